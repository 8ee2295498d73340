#!/usr/bin/env python3
"""Compile-and-run check over torchvision's classifiers: does each model compile and run, and
how close are its outputs? No timing (bench/bench_zoo.py times the models against ONNX Runtime).

Per model (the same construction as bench_zoo.py: weights=None from torch.manual_seed(--seed),
batch norms re-estimated, degenerate initialisations redrawn), at --size (224 for AlexNet and
VGG, whose adaptive pooling ONNX export only takes where it is the identity; Inception-v3 at
least 299):

1. export ONNX (opset --opset); PyTorch fp32 logits on --eval-samples seeded inputs, and ONNX
   Runtime's fp32 error on them (deep random-weight networks amplify summation-order
   differences; ONNX Runtime's error says how much of qnnc's is that);
2. qnnc fp32 for the host: `qnnc compile` and `qnnc run`; relative L2 error against PyTorch
   (the largest over the inputs);
3. qnnc int8 for the host (`--quantize int8 --calib-data`, --calib-samples seeded inputs):
   compile and run; centered SQNR and cosine of its logits against PyTorch fp32
   (models.centered_metrics);
4. for each of --boards (rpi4, rpi5): `qnnc compile --target BOARD --quantize int8` (a
   cross-compiled static bundle); with --emulate, run it under QEMU (`qnnc emulate`) and compare
   its output with the host int8 module's: bit for bit, else the relative difference (layers
   left in fp32, such as a transformer's attention, round differently on ARM).

A failure anywhere is recorded with the first line of its error and the run goes on; each
model's record goes to WORKDIR/results/MODEL.json as soon as it is done and --resume reuses it.
Modules and ONNX files are deleted after each model unless --keep. The table (markdown) goes to
--out, appended.

Example:
    .venv/bin/python bench/zoo_check.py --models resnet101,efficientnet_b4 --size 64 \\
        --workdir out/zoo_check --resume --out bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

import bench_int8
import bench_zoo
import common

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import models  # noqa: E402

BOARDS = ("rpi4", "rpi5")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qnnc", default="build/qnnc", help="path to the qnnc binary (default: %(default)s)")
    p.add_argument("--models", type=bench_zoo.parse_models, default=list(bench_zoo.ZOO_MODELS),
                   help="comma-separated torchvision model names, or 'all' (default: torchvision 0.14's "
                        "%d classifiers)" % len(bench_zoo.ZOO_MODELS))
    p.add_argument("--size", type=int, default=64, help="input height/width (default: %(default)s)")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset for export (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default: %(default)s)")
    p.add_argument("--calib-samples", type=int, default=4, help="int8 calibration inputs (default: %(default)s)")
    p.add_argument("--eval-samples", type=int, default=2, help="inputs compared (default: %(default)s)")
    p.add_argument("--boards", default="rpi4,rpi5",
                   help="boards to cross-compile the int8 module for, comma-separated, or 'none' "
                        "(default: %(default)s)")
    p.add_argument("--emulate", action="store_true", help="also run the board bundles under QEMU")
    p.add_argument("--fp32-tol", type=float, default=1e-4, help="fp32 relative L2 bound (default: %(default)s)")
    p.add_argument("--workdir", default="out/zoo_check", help="work directory (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="reuse WORKDIR/results/MODEL.json records")
    p.add_argument("--keep", action="store_true", help="keep ONNX files and modules")
    p.add_argument("--out", default=None, help="markdown file to append the table to")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per qnnc command (default: %(default)s)")
    args = p.parse_args(argv)
    args.boards = [] if args.boards == "none" else [b for b in args.boards.split(",") if b]
    bad = [b for b in args.boards if b not in BOARDS]
    if bad:
        p.error(f"--boards: unknown board(s) {', '.join(bad)} (known: {', '.join(BOARDS)})")
    return args


def model_size(name: str, size: int) -> int:
    if name == "alexnet" or name.startswith("vgg"):
        return 224  # adaptive pooling to 6x6 / 7x7 exports only where it is the identity
    if name.startswith("vit_"):
        patch = int(name.rsplit("_", 1)[1])
        return (size + patch - 1) // patch * patch  # whole patches
    return bench_zoo.model_size(name, size)


def qnnc_run(args, module: str, x: np.ndarray, workdir: str, emulate_board: str | None = None) -> np.ndarray:
    """Logits of `module` on one input, by `qnnc run` (or `qnnc emulate --board` for a bundle)."""
    xin, yout = os.path.join(workdir, "x.npy"), os.path.join(workdir, "y.npy")
    np.save(xin, x)
    if os.path.exists(yout):
        os.remove(yout)
    cmd = ([args.qnnc, "run", module] if emulate_board is None
           else [args.qnnc, "emulate", module, "--board", emulate_board, "--repeat", "1", "--warmup", "0"])
    common.run_cmd(cmd + ["--input", xin, "--output", yout], args.timeout)
    return np.load(yout).reshape(1, -1)


def check_model(args, name: str, index: int, count: int, workdir: str) -> dict:
    size = model_size(name, args.size)
    tag = f"[{index}/{count}] {name}:"
    mdir = os.path.join(workdir, name)
    os.makedirs(mdir, exist_ok=True)
    res = {"model": name, "size": size, "errors": {}, "fp32_rel_err": None, "ort_fp32_rel_err": None, "int8": None,
           "boards": {},
           "compile_s": {}, "seconds": None}
    step = bench_zoo.Step(res, tag)
    t0 = time.perf_counter()
    onnx_path = os.path.join(mdir, f"{name}_{size}.onnx")

    def export():
        model = bench_zoo.make_model(name, size, args.seed)
        models.export_onnx(model, onnx_path, size, opset=args.opset)
        return model

    model = step("export", f"build and export ONNX at {size}x{size}", export)
    if model is not None:
        evals = bench_int8.seeded_inputs(size, args.eval_samples, bench_int8.EVAL_SEED0)
        calib_path = os.path.join(mdir, "calib.npz")
        bench_int8.save_calibration(calib_path, bench_int8.seeded_inputs(size, args.calib_samples,
                                                                         bench_int8.CALIB_SEED0))
        ref = np.concatenate([models.torch_forward(model, x).reshape(1, -1) for x in evals])
        del model

        def compile_(key, out, extra):
            _, s = common.run_cmd([args.qnnc, "compile", onnx_path, "-o", out, "--quiet"] + extra, args.timeout)
            res["compile_s"][key] = round(s, 1)
            return True

        def ort_fp32():
            sess = common.ort_session(onnx_path, 2)
            name_in = sess.get_inputs()[0].name
            outs = [sess.run(None, {name_in: x})[0].reshape(1, -1) for x in evals]
            return max(models.rel_l2(r, o) for r, o in zip(ref, np.concatenate(outs)))

        res["ort_fp32_rel_err"] = step("ort", "ONNX Runtime fp32 (reference for the error)", ort_fp32)
        fp32 = os.path.join(mdir, "fp32")
        if step("fp32", "qnnc fp32: compile", compile_, "fp32", fp32, [], how="unsupported"):
            out = step("fp32", "qnnc fp32: run", lambda: np.concatenate([qnnc_run(args, fp32, x, mdir) for x in evals]))
            if out is not None:
                res["fp32_rel_err"] = max(models.rel_l2(r, o) for r, o in zip(ref, out))
        int8 = os.path.join(mdir, "int8")
        host8 = None
        q = ["--quantize", "int8", "--calib-data", calib_path]
        if step("int8", "qnnc int8: compile", compile_, "int8", int8, q, how="unsupported"):
            host8 = step("int8", "qnnc int8: run", lambda: np.concatenate([qnnc_run(args, int8, x, mdir) for x in evals]))
            if host8 is not None:
                m = models.centered_metrics(ref, host8)
                res["int8"] = {"centered_sqnr_db": round(float(m["centered_sqnr_db"]), 2),
                               "centered_cosine": round(float(m["centered_cosine"]), 4)}
        for board in args.boards:
            bdir = os.path.join(mdir, f"int8_{board}")
            if not step(board, f"qnnc int8 for {board}: compile", compile_, board, bdir, q + ["--target", board],
                        how="unsupported"):
                continue
            res["boards"][board] = {"compiled": True}
            if args.emulate and host8 is not None:
                y = step(board, f"qnnc int8 for {board}: run under QEMU", qnnc_run, args, bdir, evals[0], mdir, board)
                if y is not None:
                    res["boards"][board]["bit_identical"] = bool(np.array_equal(y[0], host8[0]))
                    res["boards"][board]["rel_diff"] = float(models.rel_l2(host8[0], y[0]))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if not args.keep:
        shutil.rmtree(mdir, ignore_errors=True)
    return res


def row(res: dict, args) -> list[str]:
    e = res["errors"]
    err = res["fp32_rel_err"]
    fp32 = (f"{err:.1e}" + ("" if err <= args.fp32_tol else " (above bound)")) if err is not None else "-"
    ort = res.get("ort_fp32_rel_err")
    ort = f"{ort:.1e}" if ort is not None else "-"
    i8 = res["int8"]
    int8 = f"runs; {i8['centered_sqnr_db']:.1f} dB / {i8['centered_cosine']:.3f}" if i8 else "-"
    boards = []
    for b in args.boards:
        r = res["boards"].get(b)
        if not r:
            boards.append("-")
        elif "bit_identical" in r:
            boards.append("compiles; " + ("bit-identical under QEMU" if r["bit_identical"]
                                          else f"under QEMU rel. diff {r.get('rel_diff', float('nan')):.1e}"))
        else:
            boards.append("compiles")
    fails = "; ".join(bench_zoo.cell_text(v, 200) for v in e.values())
    return [res["model"], str(res["size"]), fp32, ort, int8] + boards + [fails or "", f"{res['seconds']:.0f}"]


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(os.path.join(args.workdir, "results"), exist_ok=True)
    results = []
    for i, name in enumerate(args.models, 1):
        path = os.path.join(args.workdir, "results", f"{name}.json")
        if args.resume and os.path.exists(path):
            with open(path) as f:
                results.append(json.load(f))
            common.log(f"[{i}/{len(args.models)}] {name}: reused {path}")
            continue
        bench_zoo.wait_for_qnnc(args.qnnc, f"[{i}/{len(args.models)}] {name}:")
        res = check_model(args, name, i, len(args.models), args.workdir)
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
        results.append(res)
    headers = (["model", "size", "fp32 rel. L2 vs PyTorch", "ONNX Runtime fp32 rel. L2", "int8 host: centered SQNR / cosine"]
               + [f"int8 {b}" for b in args.boards] + ["failures", "s"])
    table = common.format_markdown_table(headers, [row(r, args) for r in results])
    print(table)
    ok = sum(1 for r in results if not r["errors"])
    lines = [f"{ok} of {len(results)} models without a failure; fp32 bound {args.fp32_tol:g}; int8 calibrated on "
             f"{args.calib_samples} seeded N(0,1) inputs, compared with PyTorch fp32 on {args.eval_samples}"]
    print("\n".join(lines))
    if args.out:
        common.append_results(args.out, f"Zoo compile-and-run check, {args.size}x{args.size}", table, lines)
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
