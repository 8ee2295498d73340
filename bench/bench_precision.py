#!/usr/bin/env python3
"""Which precisions work on a network trained on real data: top-1 on held-out handwritten
digits for every qnnc precision, next to PyTorch and ONNX Runtime int8, in one run.

The network and data come from tests/python/digits.py (a small ResNet trained here, seeded, on
scikit-learn's digits; 1,437 training and 360 held-out images). Every quantized model, in every
system, is calibrated on the same training images. qnnc compiles each precision with the batch
of 360 (`--input-shape 360,1,16,16 --calib-data calib.npy`), under each calibration mode, and
`qnnc eval` scores it. PyTorch int8 is FX post-training quantization (onednn engine, its
default qconfig); ONNX Runtime int8 is quantize_static (QDQ, per-channel int8 weights, uint8
activations, MinMax).

    .venv/bin/python bench/bench_precision.py --qnnc build/qnnc [--md out.md] [--json out.json]
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

import common  # puts tests/python on sys.path
import digits
from bench_int8 import ort_quantize_int8

PRECISIONS = ["fp32", "int8", "w4a8", "int4", "w2a8", "w2a2", "w1a8", "int1"]
# Columns: calibration mode of the activations / per-channel weight scale.
COLUMNS = ["minmax/channel_max", "percentile/channel_max", "kl_divergence/channel_max", "minmax/mse"]


def torch_int8_top1(net, calib: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "onednn"
    prepared = prepare_fx(copy.deepcopy(net).eval(), get_default_qconfig_mapping("onednn"),
                          example_inputs=(torch.from_numpy(calib[:1]),))
    with torch.no_grad():
        for i in range(0, len(calib), 64):
            prepared(torch.from_numpy(calib[i:i + 64]))
        q = convert_fx(prepared)
        return float((q(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def ort_top1(model_path: str, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort
    s = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    pred = [int(np.argmax(s.run(None, {name: x[i:i + 1]})[0])) for i in range(len(x))]
    return float((np.array(pred) == y).mean())


def qnnc_top1(qnnc: str, onnx_path: str, work: str, data: str, calib: str, prec: str, column: str) -> dict:
    mode, wscale = column.split("/")
    d = os.path.join(work, f"qnnc_{prec}_{mode}_{wscale}")
    cmd = [qnnc, "compile", onnx_path, "-o", d, "--input-shape", "360,1,16,16", "-q"]
    if prec != "fp32":
        cmd += ["--quantize", prec, "--calib-data", calib, "--calib-mode", mode, "--weight-scale", wscale]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1]}
    j = os.path.join(d, "eval_result.json")
    p = subprocess.run([qnnc, "eval", d, "--data", data, "--json", j], capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1]}
    with open(j) as f:
        r = json.load(f)
    with open(os.path.join(d, "graph.json")) as f:
        r["weights_bytes"] = json.load(f)["weights_bytes"]
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qnnc", default=str(common.REPO_ROOT / "build" / "qnnc"))
    ap.add_argument("--workdir", default=str(common.REPO_ROOT / "build" / "bench_precision"))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--columns", default=",".join(COLUMNS), help="CALIB_MODE/WEIGHT_SCALE pairs")
    ap.add_argument("--md", help="also write the table (markdown) here")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    t0 = time.time()
    os.makedirs(args.workdir, exist_ok=True)
    ddir = os.path.join(args.workdir, "digits")
    meta = digits.prepare(ddir)
    onnx_path, test, calib = (os.path.join(ddir, n) for n in ("digits.onnx", "test.npz", "calib.npy"))
    t = np.load(test)
    x, y = t["inputs"], t["labels"]
    xcal = np.load(calib)
    net = digits.load_net(ddir)

    res = {"torch_fp32": meta["torch_fp32_top1"]}
    print(f"PyTorch fp32 top-1 {100 * res['torch_fp32']:.2f}%", flush=True)
    res["torch_int8"] = torch_int8_top1(net, xcal, x, y)
    print(f"PyTorch int8 (FX, onednn) top-1 {100 * res['torch_int8']:.2f}%", flush=True)
    res["ort_fp32"] = ort_top1(onnx_path, x, y)
    q8 = os.path.join(args.workdir, "ort_int8.onnx")
    ort_quantize_int8(onnx_path, q8, [xcal[i:i + 1] for i in range(len(xcal))])
    res["ort_int8"] = ort_top1(q8, x, y)
    print(f"ONNX Runtime fp32 {100 * res['ort_fp32']:.2f}%, int8 {100 * res['ort_int8']:.2f}%", flush=True)

    res["qnnc"] = {}
    for prec in args.precisions.split(","):
        for col in ([COLUMNS[0]] if prec == "fp32" else args.columns.split(",")):
            r = qnnc_top1(args.qnnc, onnx_path, args.workdir, test, calib, prec, col)
            res["qnnc"][f"{prec}/{col}"] = r
            shown = f"{100 * r['top1']:.2f}% (top-5 {100 * r['top5']:.2f}%)" if "top1" in r else r["error"]
            print(f"qnnc {prec:5s} {col:26s} top-1 {shown}", flush=True)

    commit = common.git_commit()
    machine = f"{common.cpu_model()}, {common.cpu_count()} cores"
    pct = lambda v: f"{100 * v:.2f}" if isinstance(v, float) else "—"  # noqa: E731
    cols = args.columns.split(",")
    lines = [f"Held-out top-1 (%) of the digits ResNet ({meta['test']} images; PyTorch fp32 "
             f"{pct(meta['torch_fp32_top1'])}). {datetime.date.today()}, commit {commit}, {machine}. "
             f"Command: `.venv/bin/python bench/bench_precision.py`.", "",
             "| precision | " + " | ".join(cols) + " | weights (kB) |",
             "|---|" + "---|" * len(cols) + "---|"]
    for prec in args.precisions.split(","):
        cells = []
        kb = "—"
        for i, col in enumerate(cols):
            r = res["qnnc"].get(f"{prec}/{col}", {})
            if prec == "fp32" and i > 0:
                cells.append("")
                continue
            cells.append(pct(r.get("top1")) if "top1" in r else "error")
            if "weights_bytes" in r:
                kb = f"{r['weights_bytes'] / 1e3:.0f}"
        lines.append(f"| {prec} | " + " | ".join(cells) + f" | {kb} |")
    lines += ["", f"PyTorch fp32 {pct(res['torch_fp32'])}; PyTorch int8 (FX post-training, onednn) "
              f"{pct(res['torch_int8'])}; ONNX Runtime fp32 {pct(res['ort_fp32'])}, int8 (QDQ, per-channel) "
              f"{pct(res['ort_int8'])}. Run time {time.time() - t0:.0f} s."]
    table = "\n".join(lines)
    print("\n" + table)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
