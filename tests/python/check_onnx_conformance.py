#!/usr/bin/env python3
"""Runs the ONNX package's own backend node test cases through qnnc.

The cases come from `onnx.backend.test.case.node.collect_testcases` (the models and expected
outputs that `onnx` generates for its backend test suite). A case is run when its model is a
single node whose operator qnnc supports (the list is read from qnnc's own "unsupported
operator" message), its first graph input is a float32 tensor and it has exactly one float32
output. Everything else is counted as "not applicable", with the reason.

Each applicable case is adapted the way a CNN compiler needs it, and only that way:
  * every graph input but the first becomes an initializer holding the data set's values
    (qnnc needs constant weights, pads, shapes, ...);
  * the first input's declared shape is set to the data's shape;
  * an opset import newer than qnnc's maximum (read from qnnc's "uses ONNX opset" message) is
    lowered to that maximum. Opsets 22-25 mostly widen types, but to make sure the lowering
    keeps the meaning, a lowered model is first run with ONNX Runtime (when installed); if ONNX
    Runtime's output disagrees with the expected output, the case is "not applicable" (this
    also drops cases whose expected output is random, like training-mode Dropout).
Then `qnnc compile case.onnx -o DIR` and `qnnc run DIR --input x.npy --output y.npy`, and the
output is compared with the expected one: |y - expected| <= atol + rtol * |expected|
elementwise, with rtol = max(case rtol, --rtol) and atol = max(case atol, --atol) (ONNX's
runner uses rtol 1e-3, atol 1e-7; 1e-7 absolute is below float32 rounding of sums, hence the
--atol floor of 1e-5), and the shapes must be equal.

Every case ends as one of
  pass     compiled, ran, output within tolerance;
  refused  qnnc exited with status 1 and printed an `error:` line (compile or run) - allowed;
  wrong    qnnc ran but the output differs (or has another shape, or is missing) - a failure;
  crash    a signal, an exit status other than 0 and 1, status 1 without an `error:` line,
           or a timeout - a failure.
Prints one line per case, a table per operator and the refused cases with qnnc's first
error line. Exits 1 if any case is wrong or crashed, or fewer than --min-pass cases pass;
2 if the harness itself cannot start (qnnc missing, its messages not understood).

Kernels are cached in $QNNC_CACHE_DIR; when that is unset, the `kernel-cache` folder beside
the qnnc binary is used (as the CTest tests do), so a rerun compiles nothing.

Example:
    .venv/bin/python tests/python/check_onnx_conformance.py --qnnc build/qnnc \\
        --workdir out/onnx_conformance --jobs 2
    .venv/bin/python tests/python/check_onnx_conformance.py --ops Conv,MaxPool --list
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 300.0
OUTCOMES = ("pass", "refused", "wrong", "crash")
ORT_DISAGREES = "ONNX Runtime's output of the adapted (opset-lowered) model is not the expected one"


# ---------------------------------------------------------------- what qnnc supports

def probe_model(op: str, opset: int) -> onnx.ModelProto:
    """A one-node float model using operator `op` under default-domain opset `opset`."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="probe")], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def probe_error(qnnc: str, workdir: str, model: onnx.ModelProto, tag: str) -> str:
    """Compile `model` with qnnc, which must refuse it; return its stderr."""
    path = os.path.join(workdir, f"probe_{tag}.onnx")
    onnx.save(model, path)
    proc = subprocess.run([qnnc, "compile", path, "-o", os.path.join(workdir, f"probe_{tag}.qnnc")],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 1:
        raise RuntimeError(f"expected qnnc to refuse the {tag} probe model with status 1, got "
                           f"{proc.returncode}; stderr: {proc.stderr.strip()!r}")
    return proc.stderr


def qnnc_capabilities(qnnc: str, workdir: str) -> tuple[list[str], int, int]:
    """(supported operators, min opset, max opset), parsed from qnnc's own error messages."""
    err = probe_error(qnnc, workdir, probe_model("QnncNoSuchOperator", 13), "bogus_op")
    m = re.search(r"qnnc supports: ([A-Za-z0-9_, ]+)", err)
    if not m:
        raise RuntimeError(f"no 'qnnc supports: ...' list in qnnc's message: {err.strip()!r}")
    ops = [o.strip() for o in m.group(1).split(",") if o.strip()]
    err = probe_error(qnnc, workdir, probe_model("Relu", 9999), "opset")
    m = re.search(r"supports opsets (\d+) to (\d+)", err)
    if not m:
        raise RuntimeError(f"no 'supports opsets A to B' in qnnc's message: {err.strip()!r}")
    return ops, int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------- selecting and adapting cases

@dataclass
class Run:
    """One data set of one case, adapted for qnnc."""
    model: onnx.ModelProto
    x: np.ndarray
    expected: np.ndarray


@dataclass
class Case:
    name: str
    op: str
    opset: int          # the case's default-domain opset
    lowered_to: int     # the opset qnnc gets (== opset when not lowered)
    rtol: float
    atol: float
    runs: list[Run] = field(default_factory=list)
    # filled in by run_case:
    outcome: str = ""
    detail: str = ""
    max_abs_err: float | None = None
    seconds: float = 0.0


def default_opset(model: onnx.ModelProto) -> int | None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def is_float_tensor(vi: onnx.ValueInfoProto) -> bool:
    return vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == TensorProto.FLOAT


def adapt(model: onnx.ModelProto, inputs: list, expected: np.ndarray, opset: int) -> Run:
    """Inputs but the first become initializers; first input's shape = data's; opset = `opset`."""
    m = copy.deepcopy(model)
    graph = m.graph
    first = graph.input[0]
    rest = list(graph.input[1:])
    for vi, value in zip(rest, inputs[1:]):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), vi.name))
    del graph.input[1:]
    x = np.ascontiguousarray(inputs[0], dtype=np.float32)
    shape = first.type.tensor_type.shape
    del shape.dim[:]
    for d in x.shape:
        shape.dim.add().dim_value = int(d)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = opset
    return Run(m, x, expected)


def select(tc, ops: set[str], max_opset: int) -> tuple[Case | None, str, str]:
    """(case, "", op) when applicable, else (None, reason, op) where op may be ""."""
    model = tc.model
    if model is None:
        return None, "no model", ""
    nodes = model.graph.node
    if len(nodes) != 1:
        return None, "more than one node", ""
    op = nodes[0].op_type
    if nodes[0].domain not in ("", "ai.onnx"):
        return None, f"operator from domain '{nodes[0].domain}'", op
    if op not in ops:
        return None, "operator not supported by qnnc", op
    graph = model.graph
    if len(graph.input) == 0:
        return None, "no graph input", op
    if not is_float_tensor(graph.input[0]):
        return None, "first input is not a float32 tensor", op
    if len(graph.output) != 1:
        return None, f"{len(graph.output)} outputs", op
    if not is_float_tensor(graph.output[0]):
        return None, "output is not a float32 tensor", op
    opset = default_opset(model)
    if opset is None:
        return None, "no default-domain opset import", op
    if not tc.data_sets:
        return None, "no data set", op
    lowered = min(opset, max_opset)
    case = Case(tc.name, op, opset, lowered, float(tc.rtol), float(tc.atol))
    for inputs, outputs in tc.data_sets:
        if len(inputs) != len(graph.input) or len(outputs) != 1:
            return None, "data set does not match the graph's inputs/outputs", op
        if not all(isinstance(v, (np.ndarray, np.generic)) for v in inputs):
            return None, "an input is not a tensor (sequence/optional)", op
        if inputs[0].dtype != np.float32 or outputs[0].dtype != np.float32:
            return None, "data set is not float32", op
        case.runs.append(adapt(model, list(inputs), outputs[0], lowered))
    return case, "", op


def collect(ops: set[str], max_opset: int, only: set[str] | None):
    """Applicable cases, and a list of (name, op, reason, detail) for the others."""
    import onnx.backend.test.case.node as node_cases
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the generators overflow casts etc. on purpose
        testcases = node_cases.collect_testcases(None)
    cases, skipped = [], []
    for tc in sorted(testcases, key=lambda t: t.name):
        case, reason, op = select(tc, ops, max_opset)
        if only is not None and op not in only:
            continue
        if case is None:
            skipped.append((tc.name, op, reason, ""))
        else:
            cases.append(case)
    return cases, skipped


# ---------------------------------------------------------------- ONNX Runtime cross-check

def ort_disagreement(case: Case, rtol: float, atol: float) -> str | None:
    """'' when ONNX Runtime's output of every adapted model matches the expected one, None when
    ONNX Runtime is unavailable or cannot run a model, else how it differs."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    for run in case.runs:
        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            sess = ort.InferenceSession(run.model.SerializeToString(), opts,
                                        providers=["CPUExecutionProvider"])
            y = sess.run(None, {run.model.graph.input[0].name: run.x})[0]
        except Exception:  # noqa: BLE001 - ONNX Runtime's own limits say nothing about the case
            return None
        ok, _, err = compare(y, run.expected, rtol, atol)
        if not ok:
            return (f"ONNX Runtime's output of the adapted model (opset {case.opset} lowered to "
                    f"{case.lowered_to}) differs from the expected one: {err}")
    return ""


# ---------------------------------------------------------------- running qnnc

def tolerances(case: Case, args) -> tuple[float, float]:
    return max(case.rtol, args.rtol), max(case.atol, args.atol)


def compare(y: np.ndarray, expected: np.ndarray, rtol: float,
            atol: float) -> tuple[bool, float | None, str]:
    """(within tolerance, max abs error or None when the shapes differ, description)."""
    if y.shape != expected.shape:
        return False, None, f"output shape {list(y.shape)}, expected {list(expected.shape)}"
    y64 = np.asarray(y, dtype=np.float64).reshape(-1)
    e64 = np.asarray(expected, dtype=np.float64).reshape(-1)
    close = np.isclose(y64, e64, rtol=rtol, atol=atol, equal_nan=True)
    with np.errstate(invalid="ignore"):
        diff = np.abs(y64 - e64)
    diff[y64 == e64] = 0.0  # also equal infinities
    diff[np.isnan(y64) & np.isnan(e64)] = 0.0
    diff[np.isnan(diff)] = np.inf  # a NaN on one side only
    max_err = float(diff.max()) if diff.size else 0.0
    if close.all():
        return True, max_err, f"max abs err {max_err:.3g}"
    k = int(np.argmax(np.where(close, -1.0, diff)))  # the worst element out of tolerance
    where = [int(i) for i in np.unravel_index(k, expected.shape)] if expected.ndim else []
    return False, max_err, (f"{int((~close).sum())}/{close.size} elements off, max abs err "
                            f"{max_err:.3g}; at {where}: got {y64[k]:.6g}, expected {e64[k]:.6g} "
                            f"(rtol {rtol:g}, atol {atol:g})")


def error_line(stderr: str, workdir: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("error:"):
            return line.replace(workdir.rstrip("/") + "/", "")
    return ""


def classify(proc: subprocess.CompletedProcess, stage: str, workdir: str) -> tuple[str, str] | None:
    """None when qnnc succeeded; else (outcome, detail) for a refused or crashed step."""
    if proc.returncode == 0:
        return None
    if proc.returncode is None:
        return "crash", f"{stage}: timed out after {TIMEOUT_S:.0f} s"
    line = error_line(proc.stderr, workdir)
    if proc.returncode == 1 and line:
        return "refused", f"{stage}: {line}"
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        why = f"killed by {sig}"
    else:
        why = f"exit status {proc.returncode}" + ("" if line else " without an 'error:' line")
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return "crash", f"{stage}: {why}; stderr: {tail!r}"


def run_qnnc(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, None, "", "")  # returncode None: timed out


def run_case(case: Case, args, workdir: str) -> Case:
    start = time.monotonic()
    rtol, atol = tolerances(case, args)
    details, worst = [], 0.0
    for k, run in enumerate(case.runs):
        d = os.path.join(workdir, case.name + (f"_{k}" if len(case.runs) > 1 else ""))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        model_path, x_path, y_path, mod = (os.path.join(d, f) for f in
                                           ("case.onnx", "x.npy", "y.npy", "module"))
        onnx.save(run.model, model_path)
        np.save(x_path, run.x)
        np.save(os.path.join(d, "expected.npy"), run.expected)
        for stage, argv in (("compile", [args.qnnc, "compile", model_path, "-o", mod, "-q"]),
                            ("run", [args.qnnc, "run", mod, "--input", x_path, "--output", y_path])):
            bad = classify(run_qnnc(argv), stage, workdir)
            if bad:
                case.outcome, case.detail = bad
                case.seconds = time.monotonic() - start
                return case
        try:
            y = np.load(y_path)
        except (OSError, ValueError) as exc:
            case.outcome, case.detail = "wrong", f"qnnc run succeeded but its output is unreadable: {exc}"
            case.seconds = time.monotonic() - start
            return case
        ok, err, detail = compare(y, run.expected, rtol, atol)
        if err is not None:
            worst = max(worst, err)
        if not ok:
            case.outcome, case.detail = "wrong", detail
            case.max_abs_err = err
            case.seconds = time.monotonic() - start
            return case
        details.append(detail)
    case.outcome, case.detail, case.max_abs_err = "pass", "; ".join(details), worst
    case.seconds = time.monotonic() - start
    return case


# ---------------------------------------------------------------- report

def print_table(cases: list[Case], skipped_by_op: Counter) -> None:
    by_op: dict[str, Counter] = defaultdict(Counter)
    for c in cases:
        by_op[c.op][c.outcome] += 1
    ops = sorted(set(by_op) | set(skipped_by_op))
    cols = ("cases",) + OUTCOMES + ("n/a",)
    w = max([len("operator"), len("total")] + [len(o) for o in ops])
    print(f"{'operator':<{w}}  " + "  ".join(f"{c:>7}" for c in cols))
    total = Counter()
    for op in ops:
        row = Counter(by_op[op])
        row["cases"] = sum(by_op[op].values())
        row["n/a"] = skipped_by_op[op]
        total.update(row)
        print(f"{op:<{w}}  " + "  ".join(f"{row[c]:>7}" for c in cols))
    print(f"{'total':<{w}}  " + "  ".join(f"{total[c]:>7}" for c in cols))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qnnc", default=os.path.join(REPO, "build", "qnnc"),
                   help="path to the qnnc binary (default: %(default)s)")
    p.add_argument("--ops", action="append", default=None,
                   help="only these operators (comma-separated; repeatable)")
    p.add_argument("--workdir", default=None,
                   help="directory for the adapted models, inputs, outputs and modules "
                        "(default: a temporary directory, removed at the end)")
    p.add_argument("--jobs", type=int, default=1, help="cases run in parallel (default: %(default)s)")
    p.add_argument("--list", action="store_true",
                   help="list the applicable and the not applicable cases; run none through qnnc")
    p.add_argument("--min-pass", type=int, default=0,
                   help="fail if fewer than this many cases pass (default: %(default)s)")
    p.add_argument("--rtol", type=float, default=1e-3,
                   help="lower bound of the relative tolerance (default: %(default)g)")
    p.add_argument("--atol", type=float, default=1e-5,
                   help="lower bound of the absolute tolerance (default: %(default)g)")
    p.add_argument("--no-ort-check", action="store_true",
                   help="do not check opset-lowered models with ONNX Runtime")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.qnnc = os.path.abspath(args.qnnc)
    if not os.access(args.qnnc, os.X_OK):
        print(f"error: qnnc binary '{args.qnnc}' not found or not executable", file=sys.stderr)
        return 2
    os.environ.setdefault("QNNC_CACHE_DIR", os.path.join(os.path.dirname(args.qnnc), "kernel-cache"))
    only = None
    if args.ops:
        only = {o.strip() for group in args.ops for o in group.split(",") if o.strip()}

    with tempfile.TemporaryDirectory(prefix="qnnc_onnx_conf_") as tmp:
        workdir = os.path.abspath(args.workdir or tmp)
        os.makedirs(workdir, exist_ok=True)
        try:
            ops, min_opset, max_opset = qnnc_capabilities(args.qnnc, workdir)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"error: cannot read what qnnc supports: {exc}", file=sys.stderr)
            return 2
        print(f"qnnc: {args.qnnc}; opsets {min_opset} to {max_opset}; {len(ops)} operators: "
              f"{', '.join(ops)}")
        if only:
            unknown = sorted(only - set(ops))
            if unknown:
                print(f"note: qnnc does not list {', '.join(unknown)}; their cases are not applicable")
        cases, skipped = collect(set(ops), max_opset, only)

        lowered = [c for c in cases if c.lowered_to != c.opset]
        if lowered and not args.no_ort_check:
            verdicts = {c.name: ort_disagreement(c, *tolerances(c, args)) for c in lowered}
            for c in lowered:
                if verdicts[c.name]:
                    skipped.append((c.name, c.op, ORT_DISAGREES, verdicts[c.name]))
            cases = [c for c in cases if not verdicts.get(c.name)]
            unchecked = sum(v is None for v in verdicts.values())
            print(f"opset lowered to {max_opset} in {len(lowered)} cases: ONNX Runtime reproduces the "
                  f"expected output in {sum(v == '' for v in verdicts.values())}, not in "
                  f"{sum(bool(v) for v in verdicts.values())}"
                  + (f", could not run {unchecked} (those are kept)" if unchecked else ""))

        skipped_by_op = Counter(op for _, op, _, _ in skipped if op in ops)
        print(f"{len(cases)} applicable cases, {len(skipped)} not applicable")
        if args.list:
            for c in cases:
                low = f" (opset {c.opset} -> {c.lowered_to})" if c.lowered_to != c.opset else ""
                shapes = ", ".join(str(list(r.x.shape)) for r in c.runs)
                print(f"  run  {c.name}  [{c.op}, input {shapes}, opset {c.lowered_to}{low}]")
            for name, op, reason, detail in skipped:
                if op in ops:
                    print(f"  n/a  {name}  [{op}]: {detail or reason}")
            print("not applicable, by reason:")
            for reason, n in Counter(r for _, _, r, _ in skipped).most_common():
                print(f"  {n:5d}  {reason}")
            return 0

        t0 = time.monotonic()
        done = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_case, c, args, workdir) for c in cases]
            for fut in concurrent.futures.as_completed(futures):
                c = fut.result()
                done += 1
                print(f"[{done}/{len(cases)}] {c.outcome.upper():7s} {c.name} ({c.seconds:.1f} s): "
                      f"{c.detail}", flush=True)
        elapsed = time.monotonic() - t0

        print()
        print_table(cases, skipped_by_op)
        by_outcome = defaultdict(list)
        for c in sorted(cases, key=lambda c: (c.op, c.name)):
            by_outcome[c.outcome].append(c)
        for outcome in ("wrong", "crash", "refused"):
            if by_outcome[outcome]:
                print(f"\n{outcome} ({len(by_outcome[outcome])}):")
                for c in by_outcome[outcome]:
                    print(f"  {c.name} [{c.op}]: {c.detail}")
        na_supported = [s for s in skipped if s[1] in ops]
        if na_supported:
            print(f"\nnot applicable, supported operators ({len(na_supported)}):")
            for name, op, reason, detail in na_supported:
                print(f"  {name} [{op}]: {detail or reason}")
        if skipped:
            print("\nnot applicable, by reason (all cases):")
            for reason, n in Counter(r for _, _, r, _ in skipped).most_common():
                print(f"  {n:5d}  {reason}")

        n = Counter(c.outcome for c in cases)
        print(f"\n{n['pass']} passed, {n['refused']} refused, {n['wrong']} wrong, {n['crash']} crashed "
              f"of {len(cases)} cases in {elapsed:.0f} s")
        passed = [c for c in cases if c.outcome == "pass"]
        if passed:
            worst = max(passed, key=lambda c: c.max_abs_err or 0.0)
            print(f"largest max abs error among passing cases: {worst.max_abs_err:.3g} ({worst.name})")
        failed = n["wrong"] + n["crash"]
        if n["pass"] < args.min_pass:
            print(f"FAIL: {n['pass']} cases passed, fewer than --min-pass {args.min_pass}")
            failed += 1
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
