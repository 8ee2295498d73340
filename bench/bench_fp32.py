#!/usr/bin/env python3
"""fp32 latency benchmark: qnnc vs ONNX Runtime vs PyTorch on a torchvision ResNet.

In one run: builds the model (seed 0, batch-norm statistics re-estimated), exports it to
ONNX, compiles it with `qnnc compile`, checks qnnc's output against PyTorch once (relative
L2 error), then for each thread count times `qnnc bench`, ONNX Runtime (sequential,
graph optimisation ALL, intra-op threads = T, inter-op 1) and PyTorch (eval, no_grad,
torch.set_num_threads(T)) with the same warm-up and repeat counts, batch 1.

PyTorch is timed in two modes (--torch-modes): "eager" (the plain model) and "jit"
(torch.jit.trace + freeze + optimize_for_inference, which routes convolutions to oneDNN).
Some PyTorch builds (e.g. Debian's torch 1.13) run eager fp32 convolutions at one thread
through im2col and a generic BLAS (oneDNN only with more threads), which is an order of
magnitude slower; the jit row is the stronger PyTorch baseline there.

Prints a table of median/min latency with the ratio of each system's median to qnnc's
(> 1 means qnnc is faster). With --results, appends a dated markdown section (machine,
commit, command, table) to that file. Exits 1 if qnnc fails or its error exceeds --tol.

Example:
    .venv/bin/python bench/bench_fp32.py --qnnc build/qnnc --model resnet50 --size 224 \\
        --threads 1,2 --repeat 20 --workdir out/bench_fp32 --results bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import common  # also puts tests/python on sys.path
import models


TORCH_MODES = {"eager": "pytorch", "jit": "pytorch-jit"}  # mode -> system name in the table
SYSTEMS = ["qnnc", "onnxruntime", "pytorch", "pytorch-jit"]


def parse_torch_modes(text: str) -> list[str]:
    """'eager,jit' -> ['eager', 'jit']; 'none' -> [] (argparse type)."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if modes == ["none"]:
        return []
    bad = [m for m in modes if m not in TORCH_MODES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown PyTorch mode(s) {', '.join(bad)}; use eager, jit or none")
    return modes


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_model_args(p)
    p.add_argument("--threads", type=common.parse_int_list, default=[1, 2],
                   help="comma-separated thread counts (default: 1,2)")
    p.add_argument("--repeat", type=int, default=20, help="timed runs per measurement (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default: %(default)s)")
    p.add_argument("--torch-modes", type=parse_torch_modes, default=["eager", "jit"],
                   help="comma-separated PyTorch modes to time: eager, jit, or none (default: eager,jit)")
    p.add_argument("--tol", type=float, default=1e-3,
                   help="max relative L2 error of qnnc vs PyTorch (default: %(default)s)")
    p.add_argument("--workdir", default=None,
                   help="directory for the ONNX file, compiled module and JSON "
                        "(default: a fresh temporary directory)")
    p.add_argument("--results", default=None, help="markdown file to append the results to")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed for each qnnc command (default: %(default)s)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    return args


# ---------------------------------------------------------------- systems

def bench_ort(onnx_path: str, x: np.ndarray, threads: int, repeat: int, warmup: int) -> dict:
    """Time ONNX Runtime CPU inference with `threads` intra-op threads."""
    sess = common.ort_session(onnx_path, threads)
    feed = {sess.get_inputs()[0].name: x}
    return common.time_fn(lambda: sess.run(None, feed), repeat, warmup)


def torch_jit_model(model, x: np.ndarray):
    """Traced, frozen and inference-optimised (oneDNN) TorchScript version of `model`."""
    import torch
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.from_numpy(x))
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))



def check_qnnc_output(qnnc: str, module_dir: str, workdir: str, x: np.ndarray, ref: np.ndarray,
                      timeout: float) -> float:
    """Run the compiled module once on `x`; return its relative L2 error against `ref`."""
    in_path, out_path = os.path.join(workdir, "input.npy"), os.path.join(workdir, "output.npy")
    np.save(in_path, x)
    if os.path.exists(out_path):
        os.remove(out_path)
    common.run_cmd([qnnc, "run", module_dir, "--input", in_path, "--output", out_path], timeout)
    return models.rel_l2(ref, np.load(out_path))


# ---------------------------------------------------------------- report

HEADERS = ["system", "threads", "median ms", "min ms", "max ms", "std ms", "median / qnnc"]


def table_rows(results: dict) -> list[list[str]]:
    """results[(system, threads)] = stats -> formatted rows, grouped by thread count."""
    rows = []
    for threads in sorted({t for _, t in results}):
        base = results.get(("qnnc", threads))
        for system in SYSTEMS:
            stats = results.get((system, threads))
            if stats is None:
                continue
            ratio = f"{stats['median_ms'] / base['median_ms']:.2f}x" if base else "n/a"
            rows.append([system, str(threads), f"{stats['median_ms']:.2f}", f"{stats['min_ms']:.2f}",
                         f"{stats['max_ms']:.2f}", f"{stats['std_ms']:.2f}", ratio])
    return rows


def summary_lines(results: dict) -> list[str]:
    """One 'qnnc/ORT' and 'qnnc/PyTorch' median ratio line per thread count."""
    lines = []
    for threads in sorted({t for _, t in results}):
        q = results.get(("qnnc", threads))
        if not q:
            continue
        parts = []
        for system, label in (("onnxruntime", "ORT"), ("pytorch", "PyTorch"),
                              ("pytorch-jit", "PyTorch-jit")):
            other = results.get((system, threads))
            if other:
                parts.append(f"qnnc/{label} = {q['median_ms'] / other['median_ms']:.2f}")
        lines.append(f"threads={threads}: " + ", ".join(parts) + " (median time ratio; < 1 means qnnc is faster)")
    return lines


# ---------------------------------------------------------------- main

def run_benchmark(args: argparse.Namespace, workdir: str) -> int:
    name = f"{args.model}_{args.size}_op{args.opset}"
    onnx_path = os.path.join(workdir, f"{name}.onnx")
    module_dir = os.path.join(workdir, f"{name}.qnnc")

    print(f"[bench] building {args.model} (seed 0, BN re-estimated) and exporting ONNX opset {args.opset}",
          flush=True)
    t0 = time.perf_counter()
    model = models.make_torchvision(args.model, seed=0, size=args.size)
    models.export_onnx(model, onnx_path, args.size, opset=args.opset)
    print(f"[bench]   done in {time.perf_counter() - t0:.1f} s", flush=True)

    print(f"[bench] qnnc compile -> {module_dir}", flush=True)
    _, t_compile = common.run_cmd([args.qnnc, "compile", onnx_path, "-o", module_dir], args.timeout)
    print(f"[bench]   done in {t_compile:.1f} s", flush=True)

    x = models.random_input(args.size, seed=1)
    ref = models.torch_forward(model, x)
    err = check_qnnc_output(args.qnnc, module_dir, workdir, x, ref, args.timeout)
    accuracy = f"qnnc vs PyTorch rel L2 error {err:.2e} (tol {args.tol:.0e}){'' if err <= args.tol else ' EXCEEDED'}"
    print(f"[bench] {accuracy}", flush=True)

    torch_models = {}
    if "eager" in args.torch_modes:
        torch_models["pytorch"] = model
    if "jit" in args.torch_modes:
        print("[bench] preparing TorchScript model (trace + freeze + optimize_for_inference)", flush=True)
        torch_models["pytorch-jit"] = torch_jit_model(model, x)

    results = {}
    for threads in args.threads:
        print(f"[bench] threads={threads}: qnnc", flush=True)
        json_path = os.path.join(workdir, f"qnnc_bench_t{threads}.json")
        stats = common.qnnc_bench(args.qnnc, module_dir, threads, args.repeat, args.warmup, json_path,
                                  args.timeout)
        if stats.get("threads", threads) != threads:
            print(f"[bench]   warning: qnnc reports threads={stats['threads']}", flush=True)
        results[("qnnc", threads)] = stats
        print(f"[bench] threads={threads}: onnxruntime", flush=True)
        results[("onnxruntime", threads)] = bench_ort(onnx_path, x, threads, args.repeat, args.warmup)
        for system, torch_model in torch_models.items():
            print(f"[bench] threads={threads}: {system}", flush=True)
            results[(system, threads)] = common.bench_torch(torch_model, x, threads, args.repeat, args.warmup)

    rows = table_rows(results)
    summary = summary_lines(results)
    title = f"fp32 {args.model} {args.size}x{args.size}, batch 1, repeat {args.repeat}, warmup {args.warmup}"
    print()
    print(title)
    print(common.format_text_table(HEADERS, rows))
    print()
    for line in summary + [accuracy, f"qnnc compile time {t_compile:.1f} s"]:
        print(line)

    if args.results:
        common.append_results(args.results, title, common.format_markdown_table(HEADERS, rows),
                              extra_lines=summary + [accuracy, f"qnnc compile time {t_compile:.1f} s"])
        print(f"\nappended to {args.results}")
    if err > args.tol:
        print(f"FAIL: qnnc output differs from PyTorch (rel L2 error {err:.2e} > {args.tol:.0e})",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    return common.run_in_workdir(parse_args(argv), run_benchmark, "qnnc_bench_")


if __name__ == "__main__":
    sys.exit(main())
