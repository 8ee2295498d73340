#!/usr/bin/env python3
"""Checks that qnnc rejects bad models and bad inputs cleanly.

Every bad case must make qnnc exit with a positive status (not crash on a signal) and print
an error on stderr that contains "error" plus a keyword naming the problem. Cases: truncated
ONNX, random bytes, missing model path, unsupported operator, `qnnc run` with a wrong-shape /
wrong-dtype / garbage / missing input, `qnnc run`/`bench` on a CPU without the module's
features (faked with QNNC_CPU_FEATURES), an unknown --target, and `qnnc run` on a directory that
is no compiled module. A positive control (compile + run of a valid tiny conv net, compared with PyTorch)
checks that the harness itself works.

Prints one PASS/FAIL line per case and a final "N passed, M failed" line; exits 1 if any
case failed.

Example:
    .venv/bin/python tests/python/check_bad_inputs.py --qnnc build/qnnc --workdir out/bad_inputs
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

import models

TINY_SIZE = 8
TIMEOUT_S = 300.0

# Keyword groups: the stderr (lower-cased) must contain at least one alternative from every
# group. An alternative starting with "re:" is a regular expression, otherwise a substring.
MISSING_FILE = ["cannot open", "can't open", "could not open", "unable to open", "failed to open",
                "not found", "no such", "does not exist", "doesn't exist", "missing"]
INVALID_ONNX = ["not a valid onnx", "invalid onnx", "parse", "malformed", "corrupt", "truncated",
                "failed to load", "failed to read", "cannot load", "could not load", "decode"]
BAD_NPY = ["npy", "magic", "header", "not a valid", "invalid", "malformed", "corrupt", "parse"]
NOT_A_MODULE = ["not a compiled", "not a qnnc", "compiled module", "module", "manifest",
                "not found", "no such", "missing", "cannot open", "invalid"]


@dataclass
class Case:
    """One check: run `argv`; expect failure with stderr matching `keywords` (or success)."""
    name: str
    argv: list[str] | None  # None: the case could not be set up (reason in `skip_reason`)
    keywords: list[list[str]] = field(default_factory=list)
    expect_success: bool = False
    check_success: Callable[[], str | None] | None = None  # extra check; returns error or None
    skip_reason: str = ""
    result: subprocess.CompletedProcess | None = None  # already run while setting up


# ---------------------------------------------------------------- fixtures

class TinyNet(torch.nn.Module):
    """Conv(3->4, 3x3) + BN + ReLU + global average pool + flatten + Linear(4->5)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(self.conv(x)))), 1))


def make_tiny_model(path: str) -> TinyNet:
    """Export the tiny net (seed 0, non-trivial BN statistics) to `path`; return it."""
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    net.eval()
    models.export_onnx(net, path, TINY_SIZE)
    return net


def parses_as_onnx(data: bytes) -> bool:
    try:
        onnx.load_model_from_string(data)
        return True
    except Exception:  # noqa: BLE001 - any parse failure is what we want
        return False


def write_truncated(src: str, dst: str) -> None:
    """Write a prefix of `src` that protobuf cannot parse."""
    data = open(src, "rb").read()
    for cut in range(len(data) // 2, len(data)):
        if not parses_as_onnx(data[:cut]):
            open(dst, "wb").write(data[:cut])
            return
    raise RuntimeError("could not find an unparseable truncation of the tiny model")


def write_random_bytes(dst: str, n: int = 4096) -> None:
    """Write `n` seeded random bytes that do not parse as an ONNX model."""
    rng = np.random.default_rng(123)
    while True:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        if not parses_as_onnx(data):
            open(dst, "wb").write(data)
            return


def write_unsupported_op(dst: str, op: str = "Softsign") -> None:
    """Valid ONNX graph: Conv -> `op` -> output (the Conv keeps it looking like a real net)."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3],
                           rng.standard_normal((4, 3, 3, 3)).astype(np.float32).ravel().tolist())
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node(op, ["c"], ["logits"], name=f"my_{op.lower()}")]
    graph = helper.make_graph(
        nodes, "unsupported_op",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, TINY_SIZE, TINY_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, TINY_SIZE, TINY_SIZE])],
        initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, dst)


def run_qnnc(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)


# ---------------------------------------------------------------- cases

def build_cases(qnnc: str, wd: str) -> list[Case]:
    p = lambda *names: os.path.join(wd, *names)  # noqa: E731
    tiny_onnx = p("tiny.onnx")
    tiny_mod = p("tiny.qnnc")
    net = make_tiny_model(tiny_onnx)

    write_truncated(tiny_onnx, p("truncated.onnx"))
    write_random_bytes(p("random_bytes.onnx"))
    write_unsupported_op(p("softsign.onnx"), "Softsign")
    write_unsupported_op(p("sin.onnx"), "Sin")

    good = models.random_input(TINY_SIZE, seed=1)
    np.save(p("good.npy"), good)
    np.save(p("wrong_shape.npy"), models.random_input(TINY_SIZE + 1, seed=1))
    np.save(p("wrong_channels.npy"), models.random_input(TINY_SIZE, seed=1, channels=4))
    np.save(p("float64.npy"), good.astype(np.float64))
    np.save(p("int32.npy"), (good * 10).astype(np.int32))
    with open(p("garbage.npy"), "wb") as f:
        f.write(b"this is not a numpy file\n" * 8)
    os.makedirs(p("not_a_module"), exist_ok=True)
    with open(p("not_a_module", "README.txt"), "w") as f:
        f.write("not a compiled qnnc module\n")

    ref = models.torch_forward(net, good)
    for stale in ("good_out.npy", "out.npy"):  # left over from an earlier run in this workdir
        if os.path.exists(p(stale)):
            os.remove(p(stale))
    shutil.rmtree(tiny_mod, ignore_errors=True)
    compile_tiny = [qnnc, "compile", tiny_onnx, "-o", tiny_mod]

    def check_tiny_output() -> str | None:
        try:
            y = np.load(p("good_out.npy"))
        except (OSError, ValueError) as exc:
            return f"cannot read the output written by qnnc run: {exc}"
        if y.shape != ref.shape:
            return f"output shape {y.shape} != reference {ref.shape}"
        err = models.rel_l2(ref, y)
        return None if err <= 1e-4 else f"rel L2 error {err:.2e} vs PyTorch exceeds 1e-4"

    tiny_compiled = run_qnnc(compile_tiny)
    run = lambda inp: [qnnc, "run", tiny_mod, "--input", inp, "--output", p("out.npy")]  # noqa: E731
    reason = "" if tiny_compiled.returncode == 0 else (
        f"compiling the valid tiny model failed (status {tiny_compiled.returncode}): "
        f"{tiny_compiled.stderr.strip()}")
    needs_module = lambda argv: None if reason else argv  # noqa: E731

    return [
        Case("control: compile valid tiny model", compile_tiny, expect_success=True,
             result=tiny_compiled,
             check_success=lambda: None if os.path.isdir(tiny_mod) else f"{tiny_mod} was not created"),
        Case("control: run valid tiny model", needs_module(
            [qnnc, "run", tiny_mod, "--input", p("good.npy"), "--output", p("good_out.npy")]),
             expect_success=True, check_success=check_tiny_output, skip_reason=reason),
        Case("compile truncated ONNX", [qnnc, "compile", p("truncated.onnx"), "-o", p("o_trunc")],
             [INVALID_ONNX]),
        Case("compile random bytes .onnx", [qnnc, "compile", p("random_bytes.onnx"), "-o", p("o_rand")],
             [INVALID_ONNX]),
        Case("compile missing path", [qnnc, "compile", p("does_not_exist.onnx"), "-o", p("o_missing")],
             [MISSING_FILE]),
        Case("compile unsupported op (Softsign)", [qnnc, "compile", p("softsign.onnx"), "-o", p("o_ss")],
             [["unsupported", "not supported"], ["softsign"]]),
        Case("compile unsupported op (Sin)", [qnnc, "compile", p("sin.onnx"), "-o", p("o_sin")],
             [["unsupported", "not supported"], [r"re:\bsin\b"]]),
        Case("run wrong spatial shape", needs_module(run(p("wrong_shape.npy"))),
             [["shape", "dimension", "dims"]], skip_reason=reason),
        Case("run wrong channel count", needs_module(run(p("wrong_channels.npy"))),
             [["shape", "dimension", "dims"]], skip_reason=reason),
        Case("run float64 input", needs_module(run(p("float64.npy"))),
             [["dtype", "float32", "float64", "<f8", "<f4", "data type", "element type"]],
             skip_reason=reason),
        Case("run int32 input", needs_module(run(p("int32.npy"))),
             [["dtype", "float32", "int32", "<i4", "<f4", "data type", "element type"]],
             skip_reason=reason),
        Case("run garbage .npy input", needs_module(run(p("garbage.npy"))), [BAD_NPY],
             skip_reason=reason),
        Case("run missing input file", needs_module(run(p("no_such_input.npy"))), [MISSING_FILE],
             skip_reason=reason),
        Case("run on non-module directory",
             [qnnc, "run", p("not_a_module"), "--input", p("good.npy"), "--output", p("out.npy")],
             [NOT_A_MODULE]),
        # A module whose kernels need CPU features this machine lacks (the detection faked with
        # QNNC_CPU_FEATURES: an SSE4-only CPU) stops with the features named, never SIGILL.
        Case("run on a CPU without the module's features", needs_module(
            ["env", "QNNC_CPU_FEATURES=sse2,ssse3,sse4_1,sse4_2,popcnt", qnnc, "run", tiny_mod, "--input",
             p("good.npy"), "--output", p("out.npy")]),
             [["lacks"], ["avx"]], skip_reason=reason),
        Case("bench on a CPU without the module's features", needs_module(
            ["env", "QNNC_CPU_FEATURES=sse2", qnnc, "bench", tiny_mod, "--repeat", "1"]),
             [["lacks"], ["sse4_1", "avx"]], skip_reason=reason),
        Case("compile for an unknown target", [qnnc, "compile", tiny_onnx, "-o", p("o_target"), "--target", "pentium"],
             [["unknown target"], ["accepted"]]),
        Case("run on missing directory",
             [qnnc, "run", p("no_such_dir"), "--input", p("good.npy"), "--output", p("out.npy")],
             [MISSING_FILE + NOT_A_MODULE]),
    ]


def keyword_in(keyword: str, text: str) -> bool:
    if keyword.startswith("re:"):
        return re.search(keyword[3:], text) is not None
    return keyword in text


def evaluate(case: Case) -> str | None:
    """Run one case; return None on pass, else a description of what went wrong."""
    if case.argv is None:
        return f"not run: {case.skip_reason}"
    try:
        proc = case.result if case.result is not None else run_qnnc(case.argv)
    except subprocess.TimeoutExpired:
        return f"timed out after {TIMEOUT_S:.0f} s"
    except OSError as exc:
        return f"cannot execute qnnc: {exc}"
    stderr = proc.stderr.strip()
    if case.expect_success:
        if proc.returncode != 0:
            return f"expected success, got status {proc.returncode}; stderr: {stderr!r}"
        return case.check_success() if case.check_success else None
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode} (crash); stderr: {stderr!r}"
    if proc.returncode == 0:
        return "expected a non-zero exit status, got 0"
    low = stderr.lower()
    if "error" not in low:
        return f"stderr lacks 'error': {stderr!r}"
    for group in case.keywords:
        if not any(keyword_in(k, low) for k in group):
            return f"stderr mentions none of {group}: {stderr!r}"
    return None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qnnc", required=True, help="path to the qnnc binary")
    p.add_argument("--workdir", default=None,
                   help="directory for generated files (default: a fresh temporary directory)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the command of each case")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qnnc_bad_") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        cases = build_cases(args.qnnc, workdir)
        passed = failed = 0
        for case in cases:
            try:
                problem = evaluate(case)
            except Exception as exc:  # noqa: BLE001 - report harness errors as a failed case
                problem = f"harness error: {type(exc).__name__}: {exc}"
            if problem is None:
                passed += 1
                print(f"PASS  {case.name}")
            else:
                failed += 1
                print(f"FAIL  {case.name}: {problem}")
            if args.verbose and case.argv:
                print(f"      $ {shlex.join(case.argv)}")
        print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
