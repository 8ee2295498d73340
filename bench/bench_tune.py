#!/usr/bin/env python3
"""What tuning buys: qnnc untuned vs tuned vs ONNX Runtime, fp32 and int8, in one run.

For each model (torchvision, seed 0, batch-norm statistics re-estimated, batch 1) and precision:
  1. export to ONNX; calibration inputs are seeded normals shared by qnnc and ONNX Runtime;
  2. `qnnc compile` with default schedules, `qnnc bench` at each thread count;
  3. `qnnc tune` with --time-budget MINUTES (measured at --tune-threads), then `qnnc compile
     --tuning-records` and `qnnc bench` again; the tuning time is reported. With several budgets
     (--budget 20,60) the same records file is resumed up to each, and each budget's gain is
     shown as a share of the last one's;
  4. ONNX Runtime fp32, and int8 from quantize_static (QDQ, per-channel), at each thread count.
The benches of the untuned and tuned modules and of ONNX Runtime alternate in rounds, so
drift on a shared machine hits all of them alike. Prints one table and, with --results, appends
it to bench/RESULTS.md with the machine, commit and command.

    .venv/bin/python bench/bench_tune.py --models resnet50,mobilenet_v2 --precisions fp32,int8 \\
        --budget 10 --threads 1,2 --results bench/RESULTS.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import common  # puts tests/python on sys.path
import models
from bench_int8 import ort_quantize_int8


def run(cmd, **kw):
    common.log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise common.CommandError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return p


def make_model(name: str, size: int):
    import torch
    import torchvision
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(weights=None)
    models.redraw_degenerate_init(m, 0)
    models.reestimate_batchnorm(m, size, seed=1)
    return m.eval()


def qnnc_ms(qnnc: str, module: str, threads: int, repeat: int, work: str) -> float:
    j = os.path.join(work, "bench.json")
    return common.qnnc_bench(qnnc, module, threads, repeat, 3, j)["median_ms"]


def ort_ms(path: str, x: np.ndarray, threads: int, repeat: int) -> float:
    s = common.ort_session(path, threads)
    name = s.get_inputs()[0].name
    return common.time_fn(lambda: s.run(None, {name: x}), repeat, 3)["median_ms"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qnnc", default=str(common.REPO_ROOT / "build" / "qnnc"))
    ap.add_argument("--models", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--budget", default="20",
                    help="tuning minutes per model and precision; a list (e.g. 20,60) tunes to the first, benches, "
                         "resumes to the next and so on, and reports each budget's share of the last one's gain")
    ap.add_argument("--threads", type=common.parse_int_list, default=[1, 2])
    ap.add_argument("--tune-threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", default=str(common.REPO_ROOT / "build" / "bench_tune"))
    ap.add_argument("--results", help="append the table to this markdown file")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    t_start = time.time()
    rows = []
    x = np.random.default_rng(2000).standard_normal((1, 3, args.size, args.size), dtype=np.float32)
    calib = [np.random.default_rng(1000 + i).standard_normal((1, 3, args.size, args.size), dtype=np.float32)
             for i in range(8)]
    for name in args.models.split(","):
        work = os.path.join(args.workdir, name)
        os.makedirs(work, exist_ok=True)
        onnx_path = os.path.join(work, "model.onnx")
        if not os.path.exists(onnx_path):
            models.export_onnx(make_model(name, args.size), onnx_path, args.size)
        calib_path = os.path.join(work, "calib.npz")
        np.savez(calib_path, **{f"x{i}": c for i, c in enumerate(calib)})
        ort_int8 = os.path.join(work, "ort_int8.onnx")
        if "int8" in args.precisions and not os.path.exists(ort_int8):
            ort_quantize_int8(onnx_path, ort_int8, calib)
        for prec in args.precisions.split(","):
            quant = [] if prec == "fp32" else ["--quantize", prec, "--calib-data", calib_path]
            shape = ["--input-shape", f"1,3,{args.size},{args.size}"]
            d0, d1 = os.path.join(work, f"{prec}_default"), os.path.join(work, f"{prec}_tuned")
            rec = os.path.join(work, f"{prec}.jsonl")
            run([args.qnnc, "compile", onnx_path, "-o", d0, "-q", *shape, *quant])
            if os.path.exists(rec):
                os.remove(rec)
            budgets = [float(b) for b in str(args.budget).split(",")]
            tuned, done = [], 0.0
            for i, b in enumerate(budgets):
                d1 = os.path.join(work, f"{prec}_tuned_{b:g}min")
                t0 = time.time()
                p = run([args.qnnc, "tune", onnx_path, "-o", rec, "--time-budget", f"{b - done:g}m", "-t",
                         str(args.tune_threads), "-q", *shape, *quant] + (["--resume"] if i else []))
                done = b
                tune_s = time.time() - t0 + (tuned[-1]["tune_s"] if tuned else 0)
                summary = [ln for ln in p.stdout.splitlines() if ln.startswith("all tuned tasks")]
                with open(rec) as f:
                    trials = sum(1 for ln in f if ln.strip() and not json.loads(ln)["default"])
                p = run([args.qnnc, "compile", onnx_path, "-o", d1, "-q", *shape, *quant, "--tuning-records", rec])
                tuned_line = next((ln for ln in p.stdout.splitlines() if ln.startswith("qnnc: tuning:")), "")
                tuned.append({"budget": b, "dir": d1, "tune_s": tune_s, "trials": trials,
                              "summary": summary[0] if summary else "", "compile": tuned_line})
            ort_path = onnx_path if prec == "fp32" else ort_int8
            for t in args.threads:
                u, o = [], []
                tu = [[] for _ in tuned]
                for _ in range(args.rounds):
                    u.append(qnnc_ms(args.qnnc, d0, t, args.repeat, work))
                    for k, tb in enumerate(tuned):
                        tu[k].append(qnnc_ms(args.qnnc, tb["dir"], t, args.repeat, work))
                    o.append(ort_ms(ort_path, x, t, args.repeat))
                for k, tb in enumerate(tuned):
                    row = {"model": name, "precision": prec, "threads": t, "untuned_ms": min(u), "tuned_ms": min(tu[k]),
                           "ort_ms": min(o), "budget": tb["budget"], "tune_s": tb["tune_s"], "trials": tb["trials"],
                           "summary": tb["summary"], "compile": tb["compile"],
                           "last_gain_ms": min(u) - min(tu[-1])}
                    rows.append(row)
                    common.log(f"{name} {prec} {t}T, {tb['budget']:g} min: untuned {row['untuned_ms']:.2f} ms, "
                               f"tuned {row['tuned_ms']:.2f} ms, ORT {row['ort_ms']:.2f} ms")

    def share(r):
        # This budget's gain as a share of the largest budget's gain (same model, precision, threads).
        if r["last_gain_ms"] <= 0:
            return "-"
        return f"{100 * (r['untuned_ms'] - r['tuned_ms']) / r['last_gain_ms']:.0f}%"

    headers = ["model", "precision", "threads", "budget", "untuned ms", "tuned ms", "tuning gain", "share of last gain",
               "ORT ms", "tuned / ORT", "tuning"]
    table_rows = [[r["model"], r["precision"], str(r["threads"]), f"{r['budget']:g} min", f"{r['untuned_ms']:.2f}",
                   f"{r['tuned_ms']:.2f}", f"{r['untuned_ms'] / r['tuned_ms']:.2f}x", share(r), f"{r['ort_ms']:.2f}",
                   f"{r['tuned_ms'] / r['ort_ms']:.2f}", f"{r['tune_s'] / 60:.1f} min, {r['trials']} trials"]
                  for r in rows]
    print(common.format_text_table(headers, table_rows))
    notes = sorted({f"{r['model']} {r['precision']} {r['budget']:g} min: {r['summary']}; {r['compile']}" for r in rows})
    for n in notes:
        print(n)
    if args.results:
        common.append_results(args.results, "Tuning: untuned vs tuned vs ONNX Runtime (bench_tune.py)",
                              common.format_markdown_table(headers, table_rows),
                              [f"Tuning budget(s) {args.budget} min per model and precision (cumulative, resumed), measured at "
                               f"{args.tune_threads} threads; best of {args.rounds} rounds of {args.repeat} runs. "
                               f"Total {(time.time() - t_start) / 60:.0f} min."] + notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
