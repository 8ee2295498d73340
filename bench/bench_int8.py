#!/usr/bin/env python3
"""Quantized latency + accuracy benchmark: qnnc (fp32/int8/int4/...) vs ONNX Runtime int8 vs PyTorch int8.

In one run, on a torchvision ResNet (seed 0, batch-norm statistics re-estimated), batch 1:

1. exports the model to ONNX;
2. draws --calib-samples seeded standard-normal inputs (seeds 1000, 1001, ...) and saves them
   as one uncompressed calib.npz; every system calibrates on exactly these inputs;
3. qnnc: `qnnc compile` once per precision (fp32 = no --quantize; otherwise
   `--quantize P --calib-data calib.npz`), then `qnnc bench` at each thread count;
4. ONNX Runtime: fp32 on the exported model, and int8 from
   onnxruntime.quantization.quantize_static (QDQ format, activations QUInt8, weights QInt8,
   per-channel, MinMax calibration on calib.npz's inputs), which ORT executes as integer
   QLinearConv/QLinearMatMul kernels; both timed with intra_op_num_threads=T, ORT_SEQUENTIAL,
   graph optimisation ALL;
5. PyTorch int8: FX post-training quantization (prepare_fx / convert_fx) with the default
   qconfig mapping of the first available engine among onednn, fbgemm, x86, qnnpack
   (torch.backends.quantized.engine set to it), calibrated on the same inputs; timed with
   torch.set_num_threads(T);
6. accuracy on --eval-samples seeded inputs (seeds 2000, 2001, ...; disjoint from calibration):
   SQNR, cosine and top-1 agreement of each model's logits against PyTorch fp32, raw and
   centered (both minus the reference logits' mean over the eval inputs; random-weight ResNet
   logits have a large input-independent part that the raw metrics are dominated by).

Prints a table (system | precision | threads | median ms | speedup vs qnnc fp32 |
ratio vs ORT int8 | centered cosine | top-1 agree) and an accuracy table, and checks the goals:
qnnc int8 at least 3x faster than qnnc fp32, and no slower than ORT int8 (median time ratio
<= 1), at every thread count. With --results, appends a dated markdown section (machine,
commit, command, tables) to that file. Exits 1 if a command fails (and with --strict, also if
a goal is missed); a missed goal is otherwise only reported.

In qnnc on x86, W1A1 runs bit-serial popcount kernels; 2- and 4-bit layers run the int8
dot-product kernel, with their weights packed two or four per byte where the output is narrow
and one per byte on outputs of 14 or more columns, where unpacking would cost more than it saves
(see docs/precision.md). qnnc keeps the first
convolution in fp32 unless --qnnc-compile-args "--quantize-first-conv" is given; ORT and
PyTorch quantize it.

Example:
    .venv/bin/python bench/bench_int8.py --qnnc build/qnnc --model resnet50 --size 224 \\
        --threads 1,2 --repeat 20 --precisions fp32,int8,int4,int2,int1 --calib-samples 8 \\
        --workdir out/bench_int8 --results bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import shlex
import sys
import time

import numpy as np

import common  # also puts tests/python on sys.path
import models

CALIB_SEED0 = 1000  # calibration inputs use seeds 1000, 1001, ...
EVAL_SEED0 = 2000   # evaluation inputs use seeds 2000, 2001, ...
TORCH_ENGINES = ("onednn", "fbgemm", "x86", "qnnpack")  # tried in this order


def parse_precisions(text: str) -> list[str]:
    """'fp32,int8,w4a8' -> list (argparse type); fp32, intN, wXaY, or int8-all (int8 with the first
    convolution and the dense layer quantized too, as ONNX Runtime and PyTorch do)."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if not re.fullmatch(r"fp32|int(8|4|2|1)|int8-all|w\d+a\d+", v)]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"expected comma-separated precisions (fp32, int8, int4, int2, "
                                         f"int1, int8-all, wXaY), got {text!r}")
    return list(dict.fromkeys(values))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_model_args(p)
    p.add_argument("--threads", type=common.parse_int_list, default=[1, 2],
                   help="comma-separated thread counts (default: 1,2)")
    p.add_argument("--repeat", type=int, default=20, help="timed runs per measurement (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="timing rounds; each round times every system once, so that a slow minute of "
                        "this shared machine hits all systems alike; the table shows the median of the "
                        "rounds' medians (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default: %(default)s)")
    p.add_argument("--precisions", type=parse_precisions, default=["fp32", "int8", "int4", "int2", "int1"],
                   help="qnnc precisions to compile and time (default: fp32,int8,int4,int2,int1); "
                        "fp32 is always added, as the speedup baseline")
    p.add_argument("--calib-samples", type=int, default=8,
                   help="calibration inputs shared by all systems (default: %(default)s)")
    p.add_argument("--eval-samples", type=int, default=16,
                   help="inputs for the accuracy metrics (default: %(default)s)")
    p.add_argument("--qnnc-compile-args", default="",
                   help="extra arguments for every quantized `qnnc compile`, one shell-quoted string, "
                        "e.g. --qnnc-compile-args='--calib-mode percentile'")
    p.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime (fp32 and int8)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch int8")
    p.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    p.add_argument("--workdir", default=None,
                   help="directory for the ONNX files, calibration data, compiled modules and JSON "
                        "(default: a fresh temporary directory)")
    p.add_argument("--results", default=None, help="markdown file to append the results to")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed for each qnnc command (default: %(default)s)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    if args.calib_samples < 1 or args.eval_samples < 1:
        p.error("--calib-samples and --eval-samples must be >= 1")
    if "fp32" not in args.precisions:
        args.precisions.insert(0, "fp32")
    args.qnnc_compile_args = shlex.split(args.qnnc_compile_args)
    return args



# ---------------------------------------------------------------- data

def seeded_inputs(size: int, count: int, seed0: int) -> list[np.ndarray]:
    """`count` seeded (1, 3, size, size) standard-normal float32 inputs."""
    return [models.random_input(size, seed=seed0 + i) for i in range(count)]


def save_calibration(path: str, inputs: list[np.ndarray]) -> None:
    """One uncompressed .npz, one (1,3,H,W) array per sample; keys keep the sample order."""
    np.savez(path, **{f"sample{i:04d}": x for i, x in enumerate(inputs)})


# ---------------------------------------------------------------- qnnc

def qnnc_compile(args, onnx_path: str, module_dir: str, precision: str, calib_path: str) -> float:
    cmd = [args.qnnc, "compile", onnx_path, "-o", module_dir, "--quiet"]
    if precision == "int8-all":
        cmd += ["--quantize", "int8", "--quantize-first-conv", "--quantize-dense", "--calib-data", calib_path] \
            + args.qnnc_compile_args
    elif precision != "fp32":
        cmd += ["--quantize", precision, "--calib-data", calib_path] + args.qnnc_compile_args
    _, seconds = common.run_cmd(cmd, args.timeout)
    return seconds


def qnnc_outputs(args, module_dir: str, workdir: str, inputs: list[np.ndarray]) -> np.ndarray:
    """Run the module once per input (`qnnc run`); returns logits stacked to (N, classes)."""
    outs = []
    in_path, out_path = os.path.join(workdir, "eval_input.npy"), os.path.join(workdir, "eval_output.npy")
    for x in inputs:
        np.save(in_path, x)
        if os.path.exists(out_path):
            os.remove(out_path)
        common.run_cmd([args.qnnc, "run", module_dir, "--input", in_path, "--output", out_path,
                        "--threads", str(max(args.threads))], args.timeout)
        outs.append(np.load(out_path).reshape(1, -1))
    return np.concatenate(outs)


# ---------------------------------------------------------------- ONNX Runtime



def needs_external_data(onnx_path: str) -> bool:
    """True for a model near or past protobuf's 2 GB limit, whose tensors must live in a side file."""
    import onnx
    if os.path.getsize(onnx_path) > 1_500_000_000:
        return True
    model = onnx.load(onnx_path, load_external_data=False)
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def ort_quantize_int8(onnx_path: str, out_path: str, calib: list[np.ndarray]) -> None:
    """Static QDQ quantization: QUInt8 activations, per-channel QInt8 weights, MinMax calibration.
    Models past 2 GB (regnet_y_128gf) keep their tensors in external data files."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    import onnxruntime as ort

    input_name = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calib)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {input_name: x}

        def rewind(self):
            self._it = iter(calib)

    quantize_static(onnx_path, out_path, Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax,
                    use_external_data_format=needs_external_data(onnx_path))


def ort_integer_ops(quant_path: str, workdir: str) -> str:
    """Op counts of ORT's optimised int8 graph: shows whether convolutions run as QLinearConv."""
    import onnx
    opt_path = os.path.join(workdir, "ort_int8_optimized.onnx")
    try:
        common.ort_session(quant_path, 1, optimized_path=opt_path)
        counts = {}
        for node in onnx.load(opt_path).graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    except Exception as exc:  # inspection only; never fatal
        return f"(could not inspect ORT's optimised graph: {exc})"
    convs = {k: v for k, v in counts.items() if "Conv" in k or "MatMul" in k or "Gemm" in k}
    return ", ".join(f"{k} x{v}" for k, v in sorted(convs.items()))


def ort_outputs(sess, inputs: list[np.ndarray]) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x})[0].reshape(1, -1) for x in inputs])


# ---------------------------------------------------------------- PyTorch

def torch_quantize_int8(model, calib: list[np.ndarray]):
    """FX post-training static quantization; returns (quantized model, engine name)."""
    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    errors = []
    for engine in TORCH_ENGINES:
        if engine not in torch.backends.quantized.supported_engines:
            errors.append(f"{engine}: not in supported_engines")
            continue
        try:
            torch.backends.quantized.engine = engine
            example = (torch.from_numpy(calib[0]),)
            prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping(engine), example)
            with torch.no_grad():
                for x in calib:
                    prepared(torch.from_numpy(x))
            quantized = convert_fx(prepared).eval()
            with torch.no_grad():
                out = quantized(example[0])
            if not torch.isfinite(out).all():
                raise RuntimeError("non-finite output")
            return quantized, engine
        except Exception as exc:
            errors.append(f"{engine}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise RuntimeError("PyTorch FX int8 quantization failed for every engine: " + "; ".join(errors))


def torch_outputs(model, inputs: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([models.torch_forward(model, x).reshape(1, -1) for x in inputs])



# ---------------------------------------------------------------- report

MAIN_HEADERS = ["system", "precision", "threads", "median ms", "speedup vs qnnc fp32",
                "ratio vs ORT int8", "centered cosine", "top-1 agree"]
ACC_HEADERS = ["system", "precision", "SQNR dB", "cosine", "centered SQNR dB", "centered cosine",
               "top-1 agree"]


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:{spec}}{suffix}"


def combine_rounds(stats: list[dict]) -> dict:
    """One row's statistics from several rounds: the median of the rounds' medians, the extremes."""
    import statistics
    return {
        "median_ms": statistics.median(s["median_ms"] for s in stats),
        "min_ms": min(s["min_ms"] for s in stats),
        "max_ms": max(s["max_ms"] for s in stats),
        "std_ms": statistics.median(s["std_ms"] for s in stats),
        "repeat": sum(s.get("repeat", 0) for s in stats),
    }


def main_rows(order: list[tuple[str, str]], timings: dict, accuracy: dict, threads_list: list[int]):
    rows = []
    for threads in threads_list:
        base = timings.get(("qnnc", "fp32", threads))
        ort8 = timings.get(("onnxruntime", "int8", threads))
        for system, precision in order:
            stats = timings.get((system, precision, threads))
            if stats is None:
                continue
            med = stats["median_ms"]
            acc = accuracy.get((system, precision), {})
            rows.append([system, precision, str(threads), f"{med:.2f}",
                         fmt(base["median_ms"] / med if base else None, ".2f", "x"),
                         fmt(med / ort8["median_ms"] if ort8 else None, ".2f"),
                         fmt(acc.get("centered_cosine"), ".4f"),
                         fmt(acc.get("top1"), ".2f")])
    return rows


def accuracy_rows(order: list[tuple[str, str]], accuracy: dict):
    rows = []
    for key in order:
        acc = accuracy.get(key)
        if acc is None:
            continue
        rows.append([key[0], key[1], fmt(acc["sqnr_db"], ".1f"), fmt(acc["cosine"], ".4f"),
                     fmt(acc["centered_sqnr_db"], ".1f"), fmt(acc["centered_cosine"], ".4f"),
                     fmt(acc["top1"], ".2f")])
    return rows


def goal_lines(timings: dict, threads_list: list[int]) -> tuple[list[str], bool]:
    """Goal checks per thread count; returns (lines, all met)."""
    lines, ok = [], True
    for threads in threads_list:
        q8 = timings.get(("qnnc", "int8", threads))
        q32 = timings.get(("qnnc", "fp32", threads))
        o8 = timings.get(("onnxruntime", "int8", threads))
        if not q8:
            continue
        if q32:
            speedup = q32["median_ms"] / q8["median_ms"]
            met = speedup >= 3.0
            ok &= met
            lines.append(f"threads={threads}: goal qnnc int8 >= 3x faster than qnnc fp32: "
                         f"{speedup:.2f}x -> {'MET' if met else 'MISSED'}")
        if o8:
            ratio = q8["median_ms"] / o8["median_ms"]
            met = ratio <= 1.0
            ok &= met
            lines.append(f"threads={threads}: goal qnnc int8 no slower than ORT int8: "
                         f"qnnc/ORT median time = {ratio:.2f} -> {'MET' if met else 'MISSED'}")
        qa = timings.get(("qnnc", "int8-all", threads))
        if qa and o8:
            lines.append(f"threads={threads}: like for like (stem and dense quantized, as ORT does): "
                         f"qnnc int8-all/ORT int8 median time = {qa['median_ms'] / o8['median_ms']:.2f}")
        # Low-bit goals (issue #9, for ResNet-50 224): int1 at least 3x faster than int8 at one
        # thread and at most 4 ms at two; W2A2 (int2) faster than int8. Reported, not counted in
        # the int8 goals above.
        q1 = timings.get(("qnnc", "int1", threads))
        q2 = timings.get(("qnnc", "int2", threads))
        if q1 and threads == 1:
            speedup = q8["median_ms"] / q1["median_ms"]
            lines.append(f"threads=1: low-bit goal qnnc int1 >= 3x faster than qnnc int8: {speedup:.2f}x -> "
                         f"{'MET' if speedup >= 3.0 else 'MISSED'}")
        if q1 and threads == 2:
            lines.append(f"threads=2: low-bit goal qnnc int1 <= 4 ms: {q1['median_ms']:.2f} ms -> "
                         f"{'MET' if q1['median_ms'] <= 4.0 else 'MISSED'}")
        if q2:
            ratio = q2["median_ms"] / q8["median_ms"]
            lines.append(f"threads={threads}: low-bit goal qnnc int2 (W2A2) faster than qnnc int8: "
                         f"int2/int8 median time = {ratio:.2f} -> {'MET' if ratio < 1.0 else 'MISSED'}")
    return lines, ok


# ---------------------------------------------------------------- main

def run_benchmark(args: argparse.Namespace, workdir: str) -> int:
    name = f"{args.model}_{args.size}_op{args.opset}"
    onnx_path = os.path.join(workdir, f"{name}.onnx")
    calib_path = os.path.join(workdir, "calib.npz")
    notes = []

    common.log(f"building {args.model} (seed 0, BN re-estimated) and exporting ONNX opset {args.opset}")
    t0 = time.perf_counter()
    model = models.make_torchvision(args.model, seed=0, size=args.size)
    models.export_onnx(model, onnx_path, args.size, opset=args.opset)
    common.log(f"  done in {time.perf_counter() - t0:.1f} s")

    calib = seeded_inputs(args.size, args.calib_samples, CALIB_SEED0)
    evals = seeded_inputs(args.size, args.eval_samples, EVAL_SEED0)
    save_calibration(calib_path, calib)
    notes.append(f"calibration: {len(calib)} seeded N(0,1) inputs (seeds {CALIB_SEED0}..."
                 f"{CALIB_SEED0 + len(calib) - 1}) shared by all systems; accuracy on {len(evals)} "
                 f"inputs (seeds {EVAL_SEED0}...{EVAL_SEED0 + len(evals) - 1}) vs PyTorch fp32 logits")
    x_time = evals[0]  # the input every system is timed on
    common.log("PyTorch fp32 reference logits")
    ref = torch_outputs(model, evals)

    order: list[tuple[str, str]] = []  # (system, precision) in table order
    accuracy: dict = {}
    modules: dict = {}
    compile_times = []
    for precision in args.precisions:
        module_dir = os.path.join(workdir, f"{name}_{precision}.qnnc")
        common.log(f"qnnc compile {precision} -> {module_dir}")
        seconds = qnnc_compile(args, onnx_path, module_dir, precision, calib_path)
        common.log(f"  done in {seconds:.1f} s; running {len(evals)} eval inputs")
        compile_times.append(f"{precision} {seconds:.0f} s")
        modules[precision] = module_dir
        order.append(("qnnc", precision))
        accuracy[("qnnc", precision)] = models.centered_metrics(ref, qnnc_outputs(args, module_dir, workdir, evals))
    notes.append("qnnc compile time: " + ", ".join(compile_times))
    if args.qnnc_compile_args:
        notes.append(f"qnnc quantized compile args: {shlex.join(args.qnnc_compile_args)}")

    ort_models = {}
    if not args.no_ort:
        import onnxruntime as ort
        quant_path = os.path.join(workdir, f"{name}_ort_int8.onnx")
        common.log("ONNX Runtime static quantization (QDQ, U8 activations, S8 per-channel weights, MinMax)")
        ort_quantize_int8(onnx_path, quant_path, calib)
        ort_models = {"fp32": onnx_path, "int8": quant_path}
        for precision, path in ort_models.items():
            order.append(("onnxruntime", precision))
            accuracy[("onnxruntime", precision)] = models.centered_metrics(
                ref, ort_outputs(common.ort_session(path, max(args.threads)), evals))
        notes.append(f"ONNX Runtime {ort.__version__}; int8 = quantize_static QDQ, QUInt8 activations, "
                     f"per-channel QInt8 weights, MinMax; optimised int8 graph runs "
                     f"{ort_integer_ops(quant_path, workdir)}")

    torch_q = None
    if not args.no_torch:
        import torch
        common.log("PyTorch FX post-training quantization")
        try:
            torch_q, engine = torch_quantize_int8(model, calib)
        except RuntimeError as exc:
            print(f"[bench] warning: {exc}", file=sys.stderr, flush=True)
            notes.append(f"PyTorch int8 skipped: {exc}")
        else:
            order.append((f"pytorch-{engine}", "int8"))
            accuracy[(f"pytorch-{engine}", "int8")] = models.centered_metrics(ref, torch_outputs(torch_q, evals))
            notes.append(f"PyTorch {torch.__version__} int8: FX prepare_fx/convert_fx, "
                         f"get_default_qconfig_mapping('{engine}'), quantized engine '{engine}' "
                         f"(supported engines: {', '.join(torch.backends.quantized.supported_engines)})")
            common.log(f"  engine {engine}")

    per_round: dict = {}  # key -> list of per-round stats
    for rnd in range(1, max(1, args.rounds) + 1):
        for threads in args.threads:
            for precision, module_dir in modules.items():
                common.log(f"round {rnd}, threads={threads}: qnnc {precision}")
                json_path = os.path.join(workdir, f"qnnc_{precision}_bench_t{threads}.json")
                stats = common.qnnc_bench(args.qnnc, module_dir, threads, args.repeat, args.warmup, json_path,
                                          args.timeout)
                if stats.get("threads", threads) != threads:
                    common.log(f"  warning: qnnc reports threads={stats['threads']}")
                per_round.setdefault(("qnnc", precision, threads), []).append(stats)
            for precision, path in ort_models.items():
                common.log(f"round {rnd}, threads={threads}: onnxruntime {precision}")
                sess = common.ort_session(path, threads)
                feed = {sess.get_inputs()[0].name: x_time}
                per_round.setdefault(("onnxruntime", precision, threads), []).append(
                    common.time_fn(lambda: sess.run(None, feed), args.repeat, args.warmup))
            if torch_q is not None:
                system = f"pytorch-{engine}"
                common.log(f"round {rnd}, threads={threads}: {system} int8")
                per_round.setdefault((system, "int8", threads), []).append(
                    common.bench_torch(torch_q, x_time, threads, args.repeat, args.warmup))
    timings = {key: combine_rounds(stats) for key, stats in per_round.items()}
    notes.append(f"times: median over {max(1, args.rounds)} interleaved rounds of each round's median of "
                 f"{args.repeat} runs; per-round medians (ms): " +
                 "; ".join(f"{s} {p} T{t}: " + "/".join(f"{r['median_ms']:.1f}" for r in per_round[(s, p, t)])
                           for (s, p, t) in sorted(per_round, key=lambda k: (k[2], k[0], k[1]))))

    rows = main_rows(order, timings, accuracy, args.threads)
    acc_rows = accuracy_rows(order, accuracy)
    goals, goals_met = goal_lines(timings, args.threads)
    notes.append("speedup vs qnnc fp32 = qnnc fp32 median / median (> 1: faster than qnnc fp32); "
                 "ratio vs ORT int8 = median / ORT int8 median (< 1: faster than ORT int8)")
    notes.append("qnnc on x86: int1 runs bit-serial popcount kernels that hand bit planes to each other, with "
                 "threshold epilogues; int4 and int2 run the int8 dot-product kernel with weights stored two or four "
                 "per byte on outputs under 14 columns, one per byte on wider ones (int2 with threshold epilogues, except layers with a residual); "
                 "int8-all also quantizes the first convolution and the "
                 "dense layer; low-bit modes run the first convolution and the dense layer at int8; on Sapphire "
                 "Rapids the int8 convolutions that pay for it (and low-bit ones with one weight per byte) run on AMX "
                 "tile products")

    title = (f"int8 {args.model} {args.size}x{args.size}, batch 1, repeat {args.repeat}, "
             f"warmup {args.warmup}")
    print()
    print(title)
    print(common.format_text_table(MAIN_HEADERS, rows))
    print()
    print(f"accuracy vs PyTorch fp32 logits over {len(evals)} inputs")
    print(common.format_text_table(ACC_HEADERS, acc_rows))
    print()
    for line in goals + notes:
        print(line)

    if args.results:
        table_md = (common.format_markdown_table(MAIN_HEADERS, rows) + "\n\n"
                    + f"Accuracy vs PyTorch fp32 logits over {len(evals)} inputs:\n\n"
                    + common.format_markdown_table(ACC_HEADERS, acc_rows))
        common.append_results(args.results, title, table_md, extra_lines=goals + notes)
        print(f"\nappended to {args.results}")
    if args.strict and not goals_met:
        print("FAIL: a goal was missed (--strict)", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    return common.run_in_workdir(parse_args(argv), run_benchmark, "qnnc_bench_int8_")


if __name__ == "__main__":
    sys.exit(main())
