#!/usr/bin/env python3
"""End-to-end fp32 accuracy check of qnnc against PyTorch on a torchvision ResNet.

Builds the model (seed 0, batch-norm statistics re-estimated so the output depends on the
input), exports it to ONNX, runs `qnnc compile` and `qnnc run` on a seeded random input and
checks the relative L2 error ||y - ref|| / ||ref|| against the PyTorch output.

Example:
    .venv/bin/python tests/python/check_torchvision.py --qnnc build/qnnc \\
        --model resnet18 --size 64 --workdir out/check_resnet18
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

import models


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_model_args(p)
    p.add_argument("--tol", type=float, default=1e-4,
                   help="max relative L2 error vs PyTorch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default: %(default)s)")
    p.add_argument("--workdir", default=None,
                   help="directory for the ONNX file, compiled module and tensors "
                        "(default: a fresh temporary directory)")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed for each qnnc command (default: %(default)s)")
    return p.parse_args(argv)


def run_qnnc(args: list[str], timeout: float) -> float:
    """Run qnnc; return wall seconds, or raise RuntimeError carrying its stderr."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s: {shlex.join(args)}")
    except OSError as exc:
        raise RuntimeError(f"cannot execute {args[0]}: {exc}")
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exit status {proc.returncode}")
        raise RuntimeError(f"{shlex.join(args)} failed ({how})\n--- qnnc stderr ---\n"
                           f"{proc.stderr.strip()}")
    return elapsed


def check(args: argparse.Namespace, workdir: str) -> bool:
    name = f"{args.model}_{args.size}_op{args.opset}"
    onnx_path = os.path.join(workdir, f"{name}.onnx")
    module_dir = os.path.join(workdir, f"{name}.qnnc")
    in_path = os.path.join(workdir, "input.npy")
    out_path = os.path.join(workdir, "output.npy")

    t0 = time.perf_counter()
    model = models.make_torchvision(args.model, seed=args.seed, size=args.size)
    t_build = time.perf_counter() - t0

    t0 = time.perf_counter()
    models.export_onnx(model, onnx_path, args.size, opset=args.opset)
    t_export = time.perf_counter() - t0

    x = models.random_input(args.size, seed=1)
    np.save(in_path, x)
    ref = models.torch_forward(model, x)

    t_compile = run_qnnc([args.qnnc, "compile", onnx_path, "-o", module_dir], args.timeout)
    if os.path.exists(out_path):
        os.remove(out_path)
    t_run = run_qnnc([args.qnnc, "run", module_dir, "--input", in_path, "--output", out_path],
                     args.timeout)
    if not os.path.exists(out_path):
        raise RuntimeError(f"qnnc run exited 0 but wrote no output file {out_path}")

    y = np.load(out_path)
    if y.dtype != np.float32:
        raise RuntimeError(f"qnnc output has dtype {y.dtype}, expected float32")
    if y.shape != ref.shape:
        raise RuntimeError(f"qnnc output shape {y.shape} != reference shape {ref.shape}")
    if not np.all(np.isfinite(y)):
        raise RuntimeError("qnnc output contains NaN or Inf")
    err = models.rel_l2(ref, y)
    max_abs = float(np.max(np.abs(y.astype(np.float64) - ref)))
    same_top1 = int(np.argmax(y)) == int(np.argmax(ref))

    print(f"{args.model} {args.size}x{args.size} opset {args.opset}:")
    print(f"  model build {t_build:7.2f} s   export {t_export:7.2f} s   "
          f"qnnc compile {t_compile:7.2f} s   qnnc run {t_run:7.2f} s")
    print(f"  rel L2 error {err:.3e} (tol {args.tol:.1e})   max abs error {max_abs:.3e}   "
          f"|ref| {np.linalg.norm(ref):.3e}   top-1 {'matches' if same_top1 else 'DIFFERS'}")
    ok = err <= args.tol
    print("PASS" if ok else f"FAIL: rel L2 error {err:.3e} exceeds tolerance {args.tol:.1e}")
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qnnc_check_") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        try:
            return 0 if check(args, workdir) else 1
        except RuntimeError as exc:
            print(f"FAIL: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
