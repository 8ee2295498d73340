#!/usr/bin/env python3
"""End-to-end accuracy check of a qnnc-quantized torchvision ResNet against PyTorch fp32.

Builds the model (seed 0, batch-norm statistics re-estimated so the output depends on the
input), exports it to ONNX, runs `qnnc compile --quantize PRECISION`, then `qnnc run` on
several seeded random inputs (one .npy each) and PyTorch fp32 on the same inputs. Reports
SQNR, cosine similarity and top-1 agreement of the logits, raw and centered (each logit minus
its mean over the inputs, which removes the large input-independent part of random-weight
logits), and fails when the centered cosine is below --min-centered-cosine.

Example:
    .venv/bin/python tests/python/check_quantized.py --qnnc build/qnnc \\
        --model resnet50 --size 224 --precision int8 --workdir out/check_q50 \\
        --min-centered-cosine 0.9
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

import models
from check_torchvision import run_qnnc


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_model_args(p)
    p.add_argument("--precision", default="int8",
                   help="qnnc --quantize precision(s), comma-separated, e.g. int8 or int4,int2,int1 "
                        "(default: %(default)s); bounds apply to each")
    p.add_argument("--inputs", type=int, default=8,
                   help="number of seeded random inputs compared (default: %(default)s)")
    p.add_argument("--input-seed", type=int, default=100,
                   help="seed of the first input; input i uses seed+i (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default: %(default)s)")
    p.add_argument("--min-cosine", type=float, default=None,
                   help="fail when the raw logits' cosine is below this")
    p.add_argument("--min-centered-cosine", type=float, default=None,
                   help="fail when the centered cosine similarity is below this")
    p.add_argument("--min-centered-sqnr", type=float, default=None,
                   help="fail when the centered SQNR (dB) is below this")
    p.add_argument("--workdir", default=None,
                   help="directory for the ONNX file, compiled module and tensors "
                        "(default: a fresh temporary directory)")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed for each qnnc command (default: %(default)s)")
    return p.parse_args(argv)


def check(args: argparse.Namespace, workdir: str) -> bool:
    name = f"{args.model}_{args.size}_op{args.opset}"
    onnx_path = os.path.join(workdir, f"{name}.onnx")

    t0 = time.perf_counter()
    model = models.make_torchvision(args.model, seed=args.seed, size=args.size)
    models.export_onnx(model, onnx_path, args.size, opset=args.opset)
    t_export = time.perf_counter() - t0
    print(f"{args.model} {args.size}x{args.size} opset {args.opset}: model build + export {t_export:7.2f} s")

    failures = []
    for precision in args.precision.split(","):
        failures += check_precision(args, workdir, model, onnx_path, name, precision.strip())
    print("PASS" if not failures else "FAIL: " + "; ".join(failures))
    return not failures


def check_precision(args, workdir: str, model, onnx_path: str, name: str, precision: str) -> list[str]:
    module_dir = os.path.join(workdir, f"{name}_{precision}.qnnc")
    # `qnnc compile` prints a summary of what it quantized: keep it for the log.
    t0 = time.perf_counter()
    cmd = [args.qnnc, "compile", onnx_path, "-o", module_dir, "--quantize", precision]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    t_compile = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit status {proc.returncode})\n"
                           f"--- qnnc stderr ---\n{proc.stderr.strip()}")
    quant_lines = [l for l in proc.stdout.splitlines() if re.match(r"qnnc: (int|w\d|stored|kernels)", l)]

    refs, outs = [], []
    t_run = 0.0
    for i in range(args.inputs):
        x = models.random_input(args.size, seed=args.input_seed + i)
        in_path = os.path.join(workdir, f"input_{i}.npy")
        out_path = os.path.join(workdir, f"output_{precision}_{i}.npy")
        np.save(in_path, x)
        if os.path.exists(out_path):
            os.remove(out_path)
        t_run += run_qnnc([args.qnnc, "run", module_dir, "--input", in_path, "--output", out_path],
                          args.timeout)
        if not os.path.exists(out_path):
            raise RuntimeError(f"qnnc run exited 0 but wrote no output file {out_path}")
        y = np.load(out_path)
        ref = models.torch_forward(model, x)
        if y.dtype != np.float32:
            raise RuntimeError(f"qnnc output has dtype {y.dtype}, expected float32")
        if y.shape != ref.shape:
            raise RuntimeError(f"qnnc output shape {y.shape} != reference shape {ref.shape}")
        if not np.all(np.isfinite(y)):
            raise RuntimeError(f"qnnc {precision} output {i} contains NaN or Inf")
        refs.append(ref.reshape(-1))
        outs.append(y.reshape(-1))

    ref, out = np.stack(refs), np.stack(outs)
    m = models.centered_metrics(ref, out)
    # Top-1 after centering: which logit rises most above its mean for this input.
    mean = ref.astype(np.float64).mean(axis=0, keepdims=True)
    centered_top1 = float(np.mean((ref - mean).argmax(axis=1) == (out - mean).argmax(axis=1)))

    print(f"{precision} vs PyTorch fp32 on {args.inputs} inputs:")
    for l in quant_lines:
        print(f"  {l}")
    print(f"  qnnc compile {t_compile:7.2f} s   qnnc run {t_run:7.2f} s ({args.inputs} runs)")
    print(f"  raw logits       SQNR {m['sqnr_db']:7.2f} dB   cosine {m['cosine']:.5f}   "
          f"top-1 agreement {100 * m['top1']:5.1f}%")
    print(f"  centered logits  SQNR {m['centered_sqnr_db']:7.2f} dB   cosine {m['centered_cosine']:.5f}   "
          f"top-1 agreement {100 * centered_top1:5.1f}%")

    failures = []
    if args.min_cosine is not None and not m["cosine"] >= args.min_cosine:
        failures.append(f"{precision}: cosine {m['cosine']:.5f} < {args.min_cosine}")
    if args.min_centered_cosine is not None and not m["centered_cosine"] >= args.min_centered_cosine:
        failures.append(f"{precision}: centered cosine {m['centered_cosine']:.5f} < {args.min_centered_cosine}")
    if args.min_centered_sqnr is not None and not m["centered_sqnr_db"] >= args.min_centered_sqnr:
        failures.append(f"{precision}: centered SQNR {m['centered_sqnr_db']:.2f} dB < {args.min_centered_sqnr}")
    return failures


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.inputs < 2:
        print("FAIL: --inputs must be at least 2 (centered metrics need a mean over inputs)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="qnnc_checkq_") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        try:
            return 0 if check(args, workdir) else 1
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"FAIL: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
