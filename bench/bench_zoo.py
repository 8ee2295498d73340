#!/usr/bin/env python3
"""Model-zoo benchmark: qnnc vs ONNX Runtime, fp32 and int8, over torchvision's classifiers.

One run over a list of torchvision classification models (default: every classification model
of torchvision 0.14), batch 1, --size x --size inputs (inception_v3 at least 299x299). Per
model:

1. builds it with weights=None from torch.manual_seed(--seed) (googlenet and inception_v3 with
   aux_logits=False, init_weights=False; vit_* with image_size=size), re-estimates the
   batch-norm statistics on seeded random batches (models.reestimate_batchnorm), exports ONNX;
2. PyTorch fp32 logits on --eval-samples seeded inputs (seeds 2000, 2001, ...) as reference;
3. qnnc: `qnnc compile` fp32 and `--quantize int8 --calib-data calib.npz` (calib.npz: the
   --calib-samples seeded inputs of bench_int8.py, seeds 1000, 1001, ...; qnnc keeps the first
   convolution and the dense layer fp32 by default), `qnnc run` on the eval inputs;
4. ONNX Runtime: fp32 on the exported model; int8 from quantize_static (QDQ, QUInt8
   activations, per-channel QInt8 weights, MinMax) on the same calibration inputs;
5. times every system with `qnnc bench` / ORT sessions (intra-op threads T, sequential,
   optimisation ALL) at each --threads count, in --rounds interleaved rounds (each round times
   all four once per thread count; the table shows the median of the rounds' medians).

Metrics: fp32 rel err = the largest relative L2 error of qnnc fp32's logits against PyTorch over
the eval inputs; int8 centered SQNR = SQNR of the logits minus the PyTorch logits' mean over the
eval inputs (see ../shared/anchors.md and models.centered_metrics), for qnnc int8 and ORT int8.

Goals (per model): fp32 rel err <= --fp32-tol (1e-4); qnnc int8 centered SQNR >= ORT's minus
--sqnr-margin (1 dB); qnnc no slower than ORT (median ratio <= 1) in fp32 and in int8 at every
thread count. The table has a "goals missed" column, and a line under it for each model that
misses one, with the numbers behind it.

A model that fails anywhere (export, qnnc compile/run/bench, ORT quantization/session) does not
stop the run: its row says e.g. "qnnc: unsupported (error: ...)" with the first line of the
error, and the run goes on. Each model's results are written to WORKDIR/results/MODEL.json as
soon as it is done; --resume reuses them (to continue a stopped run). Compiled modules and ONNX
files are deleted after each model unless --keep.

Example (the whole list takes hours):
    .venv/bin/python bench/bench_zoo.py --qnnc build/qnnc --threads 1,2 --repeat 20 \\
        --workdir out/bench_zoo --resume --out bench/RESULTS.md
    .venv/bin/python bench/bench_zoo.py --qnnc build/qnnc --models resnet18,mobilenet_v2 --size 96
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import shutil
import sys
import time


import common  # also puts tests/python on sys.path
import models
import bench_int8
from bench_int8 import CALIB_SEED0, EVAL_SEED0, fmt

# Every classification model of torchvision 0.14 (torchvision.models.list_models() of 0.14).
ZOO_MODELS = (
    "alexnet",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "squeezenet1_0", "squeezenet1_1", "googlenet", "inception_v3",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
    "regnet_x_16gf", "regnet_x_32gf",
    "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
    "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
    "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
    "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
    "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14",
    "swin_t", "swin_s", "swin_b",
)
INCEPTION_MIN_SIZE = 299
PRECISIONS = ("fp32", "int8")
SYSTEMS = ("qnnc", "ort")


# ---------------------------------------------------------------- arguments

def parse_models(text: str) -> list[str]:
    """'resnet18,vgg11' -> list; 'all' -> every classification model this torchvision has."""
    import torchvision
    names = [v.strip() for v in text.split(",") if v.strip()]
    if names == ["all"]:
        return list(torchvision.models.list_models(module=torchvision.models))
    unknown = [n for n in names if not callable(getattr(torchvision.models, n, None))]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown torchvision model(s): {', '.join(unknown) or text!r}")
    return list(dict.fromkeys(names))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qnnc", default=str(common.REPO_ROOT / "build" / "qnnc"),
                   help="path to the qnnc binary (default: build/qnnc)")
    p.add_argument("--models", type=parse_models, default=list(ZOO_MODELS),
                   help="comma-separated torchvision model names, or 'all' for every classification "
                        "model this torchvision has (default: torchvision 0.14's %d classifiers)"
                        % len(ZOO_MODELS))
    p.add_argument("--size", type=int, default=224,
                   help=f"input height/width (default: %(default)s; inception_v3 at least {INCEPTION_MIN_SIZE})")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset for export (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default: %(default)s)")
    p.add_argument("--threads", type=common.parse_int_list, default=[1, 2],
                   help="comma-separated thread counts (default: 1,2)")
    p.add_argument("--repeat", type=int, default=20, help="timed runs per measurement (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved timing rounds per model (default: %(default)s)")
    p.add_argument("--calib-samples", type=int, default=8,
                   help="calibration inputs shared by qnnc and ORT (default: %(default)s)")
    p.add_argument("--eval-samples", type=int, default=16,
                   help="inputs for the error and SQNR metrics (default: %(default)s)")
    p.add_argument("--qnnc-compile-args", default="",
                   help="extra arguments for the int8 `qnnc compile`, one shell-quoted string")
    p.add_argument("--fp32-tol", type=float, default=1e-4,
                   help="goal: qnnc fp32 rel L2 error vs PyTorch at most this (default: %(default)s)")
    p.add_argument("--sqnr-margin", type=float, default=1.0,
                   help="goal: qnnc int8 centered SQNR at least ORT's minus this many dB (default: %(default)s)")
    p.add_argument("--workdir", default=None,
                   help="directory for ONNX files, modules and per-model JSON results "
                        "(default: a fresh temporary directory)")
    p.add_argument("--resume", action="store_true",
                   help="reuse WORKDIR/results/MODEL.json of models already done (needs --workdir)")
    p.add_argument("--keep", action="store_true",
                   help="keep each model's ONNX files, calibration data and compiled modules")
    p.add_argument("--out", default=None, help="markdown file to append the table to (e.g. bench/RESULTS.md)")
    p.add_argument("--strict", action="store_true", help="exit 1 if a model misses a goal or fails")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed for each qnnc command (default: %(default)s)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.rounds < 1:
        p.error("--repeat and --rounds must be >= 1 and --warmup >= 0")
    if args.calib_samples < 1 or args.eval_samples < 2:
        p.error("--calib-samples must be >= 1 and --eval-samples >= 2 (centering needs several inputs)")
    if args.resume and not args.workdir:
        p.error("--resume needs --workdir")
    args.qnnc = os.path.abspath(args.qnnc)
    args.qnnc_compile_args = shlex.split(args.qnnc_compile_args)
    return args


# ---------------------------------------------------------------- models

def model_size(name: str, size: int) -> int:
    return max(size, INCEPTION_MIN_SIZE) if name == "inception_v3" else size


def make_model(name: str, size: int, seed: int = 0):
    """Eval-mode torchvision classifier, weights=None from torch.manual_seed(seed), batch-norm
    statistics re-estimated, degenerate initialisations redrawn (as models.make_torchvision, for any
    torchvision name)."""
    import torch
    import torchvision
    kwargs = {}
    if name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": False}
    elif name.startswith("vit_"):
        kwargs = {"image_size": size}
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    models.redraw_degenerate_init(model, seed)
    models.reestimate_batchnorm(model, size, seed=seed + 1)
    return model.eval()


# ---------------------------------------------------------------- failures

def first_line(exc: BaseException) -> str:
    """The first line of an error: for a failed command, its stderr's first non-empty line."""
    text = str(exc)
    marker = "--- stderr ---"
    if marker in text:
        stderr = [l.strip() for l in text.split(marker, 1)[1].splitlines() if l.strip()]
        if stderr:
            return stderr[0]
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    line = lines[0] if lines else ""
    return f"{type(exc).__name__}: {line}" if not isinstance(exc, common.CommandError) else line


def cell_text(text: str, limit: int = 160) -> str:
    """A table cell: no '|' or newlines, at most `limit` characters."""
    text = " ".join(text.replace("|", "/").split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Step:
    """Runs one step of one model and logs it; a failure is recorded in res["errors"][key] as
    "LABEL: HOW (first line of the error)" (the first failure per key wins) and returns None."""

    def __init__(self, res: dict, tag: str):
        self.res, self.tag = res, tag

    def __call__(self, key: str, what: str, fn, *a, label: str | None = None, how: str = "failed", **kw):
        common.log(f"{self.tag} {what}")
        t0 = time.perf_counter()
        try:
            value = fn(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and the run goes on
            msg = first_line(exc)
            if how == "unsupported" and not msg.startswith("error:"):
                how = "compile failed"  # a crash or a timeout, not a clean refusal
            self.res["errors"].setdefault(key, f"{label or key}: {how} ({msg})")
            common.log(f"{self.tag}   FAILED after {time.perf_counter() - t0:.1f} s: {msg}")
            return None
        common.log(f"{self.tag}   done in {time.perf_counter() - t0:.2f} s")
        return value


# ---------------------------------------------------------------- one model

def wait_for_qnnc(qnnc: str, tag: str, limit_s: float = 600) -> None:
    """Wait (up to limit_s) while the qnnc binary is missing, e.g. being relinked by a build."""
    t0 = time.perf_counter()
    while not os.access(qnnc, os.X_OK) and time.perf_counter() - t0 < limit_s:
        if time.perf_counter() - t0 < 1:
            common.log(f"{tag} waiting for {qnnc} to exist (up to {limit_s:.0f} s)")
        time.sleep(10)


def tkey(system: str, precision: str, threads: int) -> str:
    return f"{system} {precision} {threads}"


def run_model(args, name: str, index: int, count: int, workdir: str) -> dict:
    """Everything for one model; returns its result record (JSON-serialisable)."""
    size = model_size(name, args.size)
    tag = f"[{index}/{count}] {name}:"
    mdir = os.path.join(workdir, name)
    os.makedirs(mdir, exist_ok=True)
    res = {"model": name, "size": size, "errors": {}, "fp32_rel_err": None, "ort_fp32_rel_err": None,
           "centered_sqnr": {}, "times": {}, "round_medians": {}, "compile_s": {}}
    step = Step(res, tag)
    t_start = time.perf_counter()
    onnx_path = os.path.join(mdir, f"{name}_{size}_op{args.opset}.onnx")
    calib_path = os.path.join(mdir, "calib.npz")
    ort_int8_path = os.path.join(mdir, f"{name}_{size}_ort_int8.onnx")

    def build_and_export():
        model = make_model(name, size, args.seed)
        models.export_onnx(model, onnx_path, size, opset=args.opset)
        return model

    model = step("export", f"build (seed {args.seed}, BN re-estimated) and export ONNX at {size}x{size}",
                 build_and_export)
    if model is None:
        return finish(res, t_start, args)
    calib = bench_int8.seeded_inputs(size, args.calib_samples, CALIB_SEED0)
    evals = bench_int8.seeded_inputs(size, args.eval_samples, EVAL_SEED0)
    bench_int8.save_calibration(calib_path, calib)
    ref = step("export", "PyTorch fp32 reference logits", bench_int8.torch_outputs, model, evals,
               label="PyTorch")
    del model
    gc.collect()
    if ref is None:
        return finish(res, t_start, args)

    # qnnc: compile both precisions, outputs on the eval inputs
    wait_for_qnnc(args.qnnc, tag)
    modules = {}
    for precision in PRECISIONS:
        module_dir = os.path.join(mdir, f"{name}_{precision}.qnnc")
        if "qnnc" in res["errors"]:
            break  # fp32 did not compile: int8 will not either
        seconds = step("qnnc" if precision == "fp32" else f"qnnc {precision}", f"qnnc compile {precision}",
                       bench_int8.qnnc_compile, args, onnx_path, module_dir, precision, calib_path,
                       label="qnnc" if precision == "fp32" else f"qnnc {precision}", how="unsupported")
        if seconds is None:
            continue
        res["compile_s"][precision] = seconds
        out = step(f"qnnc {precision}", f"qnnc run {precision} on {len(evals)} eval inputs",
                   bench_int8.qnnc_outputs, args, module_dir, mdir, evals, how="run failed")
        if out is None:
            continue
        modules[precision] = module_dir
        if precision == "fp32":
            res["fp32_rel_err"] = max(models.rel_l2(r, o) for r, o in zip(ref, out))
        else:
            res["centered_sqnr"]["qnnc"] = models.centered_metrics(ref, out)["centered_sqnr_db"]

    # ONNX Runtime: fp32 and quantize_static int8, outputs on the eval inputs
    ort_paths = {}

    def ort_eval(path):
        return bench_int8.ort_outputs(common.ort_session(path, max(args.threads)), evals)

    out = step("ort fp32", "ORT fp32 on the eval inputs", ort_eval, onnx_path, label="ORT fp32")
    if out is not None:
        ort_paths["fp32"] = onnx_path
        res["ort_fp32_rel_err"] = max(models.rel_l2(r, o) for r, o in zip(ref, out))

    def ort_quantize():
        bench_int8.ort_quantize_int8(onnx_path, ort_int8_path, calib)
        return True  # Step's None means failure

    if step("ort int8", "ORT quantize_static (QDQ, U8 activations, S8 per-channel weights, MinMax)",
            ort_quantize, label="ORT int8", how="quantize_static failed"):
        out = step("ort int8", "ORT int8 on the eval inputs", ort_eval, ort_int8_path, label="ORT int8")
        if out is not None:
            ort_paths["int8"] = ort_int8_path
            res["centered_sqnr"]["ort"] = models.centered_metrics(ref, out)["centered_sqnr_db"]

    # timing: interleaved rounds over thread counts, precisions, systems
    x_time = evals[0]

    def time_ort(path, threads):
        sess = common.ort_session(path, threads)
        feed = {sess.get_inputs()[0].name: x_time}
        return common.time_fn(lambda: sess.run(None, feed), args.repeat, args.warmup)

    per_round: dict = {}
    for rnd in range(1, args.rounds + 1):
        for threads in args.threads:
            for precision in PRECISIONS:
                if precision in modules:
                    json_path = os.path.join(mdir, f"qnnc_{precision}_t{threads}.json")
                    stats = step(f"qnnc {precision}", f"round {rnd}, {threads}t: qnnc bench {precision}",
                                 common.qnnc_bench, args.qnnc, modules[precision], threads, args.repeat,
                                 args.warmup, json_path, args.timeout, how="bench failed")
                    if stats is None:
                        del modules[precision]
                    else:
                        per_round.setdefault(tkey("qnnc", precision, threads), []).append(stats)
                if precision in ort_paths:
                    stats = step(f"ort {precision}", f"round {rnd}, {threads}t: ORT {precision}",
                                 time_ort, ort_paths[precision], threads, label=f"ORT {precision}",
                                 how="timing failed")
                    if stats is None:
                        del ort_paths[precision]
                    else:
                        per_round.setdefault(tkey("ort", precision, threads), []).append(stats)
    res["times"] = {k: bench_int8.combine_rounds(v) for k, v in per_round.items()}
    res["round_medians"] = {k: [s["median_ms"] for s in v] for k, v in per_round.items()}
    if not args.keep:
        shutil.rmtree(mdir, ignore_errors=True)
    return finish(res, t_start, args)


def finish(res: dict, t_start: float, args) -> dict:
    res["seconds"] = time.perf_counter() - t_start
    res["goals_missed"], res["miss_lines"] = check_goals(res, args)
    return res


# ---------------------------------------------------------------- goals and table

def check_goals(res: dict, args) -> tuple[list[str], list[str]]:
    """(short tags for the table, one explanatory line per missed goal or failure)."""
    errors = res["errors"]
    tags = [errors[k] for k in ("export", "qnnc", "qnnc fp32", "qnnc int8", "ort fp32", "ort int8") if k in errors]
    lines = list(tags)
    if "export" in errors:
        return tags, lines

    err, ort_err = res["fp32_rel_err"], res["ort_fp32_rel_err"]
    if err is not None and not err <= args.fp32_tol:
        tags.append("fp32 err")
        lines.append(f"fp32 error {err:.2e} > {args.fp32_tol:.0e} (largest rel L2 vs PyTorch over "
                     f"{args.eval_samples} inputs; ONNX Runtime fp32: {fmt(ort_err, '.2e')})")

    q, o = res["centered_sqnr"].get("qnnc"), res["centered_sqnr"].get("ort")
    if q is not None and o is not None and not q >= o - args.sqnr_margin:
        tags.append("int8 SQNR")
        lines.append(f"int8 centered SQNR {q:.1f} dB < ONNX Runtime's {o:.1f} dB - {args.sqnr_margin:g} dB")

    for precision in PRECISIONS:
        slow = []
        for threads in args.threads:
            qt = res["times"].get(tkey("qnnc", precision, threads))
            ot = res["times"].get(tkey("ort", precision, threads))
            if qt and ot and qt["median_ms"] > ot["median_ms"]:
                slow.append((threads, qt["median_ms"], ot["median_ms"]))
        if slow:
            tags.append(f"{precision} speed " + ",".join(f"{t}t" for t, _, _ in slow))
            lines.append(f"{precision} slower than ONNX Runtime: " + "; ".join(
                f"{t} thread{'s' if t > 1 else ''} {qm:.3g} vs {om:.3g} ms ({qm / om:.3f}x)" for t, qm, om in slow))
    return tags, lines


def joined(values: list, spec: str) -> str:
    if all(v is None for v in values):
        return "—"
    return " / ".join(fmt(v, spec) for v in values)


def table_headers(threads: list[int]) -> list[str]:
    t = "/".join(f"{n}t" for n in threads)
    return ["model", "size", "fp32 rel err", f"qnnc fp32 ms {t}", f"ORT fp32 ms {t}", "fp32 qnnc/ORT",
            f"qnnc int8 ms {t}", f"ORT int8 ms {t}", "int8 qnnc/ORT", "int8 cSQNR dB qnnc / ORT",
            "goals missed"]


def table_row(res: dict, threads: list[int]) -> list[str]:
    def ms(system, precision):
        return [res["times"].get(tkey(system, precision, t), {}).get("median_ms") for t in threads]

    def ratio(precision):
        qs, os_ = ms("qnnc", precision), ms("ort", precision)
        return [q / o if q is not None and o is not None else None for q, o in zip(qs, os_)]

    sq = res["centered_sqnr"]
    missed = res["goals_missed"]
    return [res["model"], str(res["size"]), fmt(res["fp32_rel_err"], ".1e"),
            joined(ms("qnnc", "fp32"), ".2f"), joined(ms("ort", "fp32"), ".2f"), joined(ratio("fp32"), ".2f"),
            joined(ms("qnnc", "int8"), ".2f"), joined(ms("ort", "int8"), ".2f"), joined(ratio("int8"), ".2f"),
            f"{fmt(sq.get('qnnc'), '.1f')} / {fmt(sq.get('ort'), '.1f')}",
            cell_text("; ".join(missed)) if missed else "none"]


def summary_lines(results: list[dict], args) -> list[str]:
    n = len(results)
    met = sum(1 for r in results if not r["goals_missed"])
    failed = [r["model"] + ("" if "qnnc" in r["errors"] else " (int8)") for r in results
              if "qnnc" in r["errors"] or "qnnc int8" in r["errors"]]
    lines = [f"{met} of {n} models meet every goal"]
    if failed:
        lines.append(f"qnnc fails on {len(failed)}: {', '.join(failed)}")
    for label, tag in (("fp32 error", "fp32 err"), ("int8 SQNR", "int8 SQNR"),
                       ("fp32 speed", "fp32 speed"), ("int8 speed", "int8 speed")):
        miss = [r["model"] for r in results if any(t.startswith(tag) for t in r["goals_missed"])]
        if miss:
            lines.append(f"{label} goal missed on {len(miss)}: {', '.join(miss)}")
    return lines


# ---------------------------------------------------------------- main

def run_benchmark(args, workdir: str) -> int:
    import onnxruntime as ort
    import torch
    import torchvision
    results_dir = os.path.join(workdir, "results")
    os.makedirs(results_dir, exist_ok=True)
    results = []
    t0 = time.perf_counter()
    for i, name in enumerate(args.models, 1):
        json_path = os.path.join(results_dir, f"{name}.json")
        res = None
        if args.resume and os.path.exists(json_path):
            with open(json_path) as f:
                res = json.load(f)
            if res.get("size") != model_size(name, args.size):
                res = None  # measured at another size: run again
        if res is not None:
            res["goals_missed"], res["miss_lines"] = check_goals(res, args)
            common.log(f"[{i}/{len(args.models)}] {name}: reusing {json_path}")
        else:
            res = run_model(args, name, i, len(args.models), workdir)
            with open(json_path, "w") as f:
                json.dump(res, f, indent=1)
        results.append(res)
        row = table_row(res, args.threads)
        common.log(f"[{i}/{len(args.models)}] {name}: " + ", ".join(
            f"{h}: {c}" for h, c in zip(table_headers(args.threads)[2:], row[2:])) +
            f" ({res.get('seconds', 0):.0f} s; {time.perf_counter() - t0:.0f} s so far)")

    headers = table_headers(args.threads)
    rows = [table_row(r, args.threads) for r in results]
    misses = [f"{r['model']}: {line}" for r in results for line in r["miss_lines"]]
    notes = summary_lines(results, args) + [
        f"{len(results)} models, batch 1, {args.size}x{args.size} (inception_v3 at least {INCEPTION_MIN_SIZE}), "
        f"weights=None seed {args.seed}, batch-norm statistics re-estimated, ONNX opset {args.opset}",
        f"times: median over {args.rounds} interleaved rounds of each round's median of {args.repeat} runs "
        f"(warm-up {args.warmup}); qnnc/ORT = median time ratio (< 1: qnnc faster)",
        f"fp32 rel err: largest relative L2 error of qnnc fp32 vs PyTorch fp32 logits over {args.eval_samples} "
        f"inputs (seeds {EVAL_SEED0}...); cSQNR: SQNR of the logits centered on the PyTorch logits' mean over "
        f"those inputs",
        f"int8: both calibrated on the same {args.calib_samples} seeded N(0,1) inputs (seeds {CALIB_SEED0}...); "
        f"qnnc `{shlex.join(['--quantize', 'int8'] + args.qnnc_compile_args)}` (first conv and dense kept fp32 "
        f"unless those arguments say otherwise); "
        f"ONNX Runtime {ort.__version__} quantize_static QDQ, QUInt8 activations, per-channel QInt8 weights, "
        f"MinMax",
        f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}",
        f"goals: fp32 rel err <= {args.fp32_tol:g}; int8 cSQNR >= ORT's - {args.sqnr_margin:g} dB; "
        f"qnnc/ORT <= 1 in fp32 and int8 at every thread count",
        f"total time {time.perf_counter() - t0:.0f} s",
    ]
    title = f"Model zoo {args.size}x{args.size}, batch 1, threads {','.join(map(str, args.threads))}"
    print()
    print(title)
    print(common.format_text_table(headers, rows))
    print()
    for line in notes:
        print(line)
    if misses:
        print("\nmissed goals and failures:")
        for line in misses:
            print(f"  {line}")

    if args.out:
        table_md = common.format_markdown_table(headers, rows)
        if misses:
            table_md += "\n\nMissed goals and failures:\n\n" + "\n".join(f"- {cell_text(m, 400)}" for m in misses)
        common.append_results(args.out, title, table_md, extra_lines=notes)
        print(f"\nappended to {args.out}")
    if args.strict and any(r["goals_missed"] for r in results):
        print("FAIL: a model missed a goal or failed (--strict)", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    return common.run_in_workdir(parse_args(argv), run_benchmark, "qnnc_bench_zoo_")


if __name__ == "__main__":
    sys.exit(main())
