#!/usr/bin/env python3
"""Where does int8 lose accuracy? Each activation's SQNR in qnnc and in ONNX Runtime, side by side.

For one torchvision model (seed 0, batch-norm statistics re-estimated, batch 1):
  1. export to ONNX; calibration: the seeded normal inputs bench_int8.py and bench_zoo.py use
     (seeds 1000, 1001, ...), shared by both systems;
  2. qnnc: `qnnc compile --quantize int8 --calib-data ... --report` (extra arguments after `--`
     go to compile); its per-layer SQNR comes from the module's accuracy.json (qnnc's own
     report inputs against qnnc fp32);
  3. ONNX Runtime: quantize_static QDQ (QUInt8 activations, per-channel QInt8 weights, MinMax)
     on the same calibration; each activation qnnc reports is read from the QDQ model (its
     DequantizeLinear output where ONNX Runtime quantizes it) and from the fp32 model, on
     seeded inputs (seeds 2000, ...), graph optimizations off so every tensor stays visible;
  4. one row per activation in graph order: qnnc dB, ONNX Runtime dB, difference. A gap that
     opens at one layer and persists names the culprit.

    .venv/bin/python bench/layer_sqnr.py --model efficientnet_b0 --size 224
    .venv/bin/python bench/layer_sqnr.py --model mobilenet_v3_large -- --calib-mode percentile
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np

import common  # puts tests/python on sys.path
import models
from bench_int8 import ort_quantize_int8, save_calibration, seeded_inputs

CALIB_SEED0, EVAL_SEED0 = 1000, 2000


def ort_with_outputs(path: str, names: list[str]):
    """An unoptimized ONNX Runtime session of `path` that also returns the tensors `names`."""
    import onnx
    import onnxruntime as ort
    model = onnx.load(path)
    have = {o.name for o in model.graph.output}
    for n in names:
        if n not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def sqnr_db(signal: float, noise: float) -> float:
    return math.inf if noise <= 0 else 10 * math.log10(signal / noise)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--qnnc", default=str(common.REPO_ROOT / "build" / "qnnc"))
    ap.add_argument("--model", default="efficientnet_b0", help="torchvision model name")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib-samples", type=int, default=8)
    ap.add_argument("--eval-samples", type=int, default=8, help="inputs ONNX Runtime's SQNR is measured on")
    ap.add_argument("--workdir", help="keep the ONNX files and the module here (default: a temporary folder)")
    ap.add_argument("compile_args", nargs="*", help="after --: more `qnnc compile` arguments")
    args = ap.parse_args(argv)
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        wd = args.workdir or tmp
        os.makedirs(wd, exist_ok=True)
        onnx_path = os.path.join(wd, f"{args.model}_{args.size}.onnx")
        common.log(f"exporting {args.model} at {args.size}x{args.size}")
        models.export_onnx(models.make_torchvision(args.model, seed=0, size=args.size), onnx_path, args.size)
        calib = seeded_inputs(args.size, args.calib_samples, CALIB_SEED0)
        calib_path = os.path.join(wd, "calib.npz")
        save_calibration(calib_path, calib)

        module = os.path.join(wd, "qnnc_int8")
        common.log("qnnc int8 with --report")
        common.run_cmd([args.qnnc, "compile", onnx_path, "-o", module, "--quantize", "int8", "--calib-data",
                        calib_path, "--report", "-q"] + args.compile_args)
        with open(os.path.join(module, "accuracy.json")) as f:
            report = json.load(f)
        qnnc_db = {layer["name"]: layer["sqnr_db"] for layer in report["layers"]}

        ort_path = os.path.join(wd, "ort_int8.onnx")
        common.log("ONNX Runtime quantize_static (QDQ)")
        ort_quantize_int8(onnx_path, ort_path, calib)
        fp32_tensors = {o for n in onnx.load(onnx_path).graph.node for o in n.output}
        qdq_tensors = {o for n in onnx.load(ort_path).graph.node for o in n.output}
        names = [n for n in qnnc_db if n in fp32_tensors]  # graph order, as qnnc reports them
        in_ort = [n + "_DequantizeLinear_Output" if n + "_DequantizeLinear_Output" in qdq_tensors else n
                  for n in names]
        missing = [n for n, o in zip(names, in_ort) if o not in qdq_tensors]
        if missing:
            common.log(f"{len(missing)} activation(s) not in ONNX Runtime's model, skipped: {missing[:3]}")
        keep = [(n, o) for n, o in zip(names, in_ort) if o in qdq_tensors]

        ref = ort_with_outputs(onnx_path, [n for n, _ in keep])
        qdq = ort_with_outputs(ort_path, [o for _, o in keep])
        iname = ref.get_inputs()[0].name
        signal = {n: 0.0 for n, _ in keep}
        noise = {n: 0.0 for n, _ in keep}
        for x in seeded_inputs(args.size, args.eval_samples, EVAL_SEED0):
            a = dict(zip([o.name for o in ref.get_outputs()], ref.run(None, {iname: x})))
            b = dict(zip([o.name for o in qdq.get_outputs()], qdq.run(None, {iname: x})))
            for n, o in keep:
                r, q = a[n].astype(np.float64), b[o].astype(np.float64)
                signal[n] += float((r * r).sum())
                noise[n] += float(((r - q) ** 2).sum())

    rows = []
    for n, o in keep:
        ort_db = sqnr_db(signal[n], noise[n])
        rows.append([n if len(n) <= 64 else "..." + n[-61:], f"{qnnc_db[n]:.2f}", f"{ort_db:.2f}",
                     f"{qnnc_db[n] - ort_db:+.2f}", "yes" if o != n else "no"])
    print(common.format_text_table(["activation", "qnnc dB", "ORT dB", "qnnc - ORT", "ORT quantizes it"], rows))
    c = report["centered"]
    print(f"\nqnnc logits vs its fp32 on {report.get('inputs', '?')} inputs: centered SQNR {c['sqnr_db']:.2f} dB, "
          f"cosine {c['cosine']:.4f}")
    print("qnnc's SQNR: its --report inputs against qnnc fp32; ONNX Runtime's: "
          f"{args.eval_samples} seeded inputs (seeds {EVAL_SEED0}...) against ONNX Runtime fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
