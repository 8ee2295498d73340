#!/usr/bin/env python3
"""The Python package (import qnnc: the nanobind extension over the C++ API) and the C interface.

Compiles the builtin ResNet-18 small in fp32 and int8 from Python and calls the modules with
numpy and with torch tensors through DLPack; outputs equal `qnnc run` on the same input. One
module called from 4 Python threads at once gives the sequential outputs. A torchvision model
given as a torch.nn.Module and as an onnx.ModelProto matches PyTorch. profile() and inspect()
return rows and code; options and errors surface as QnncError with the CLI's messages. The C
interface (libqnnc_c.so through ctypes) gives the same outputs and keeps each thread's last
error its own. Ends with 'N passed, M failed'.

Run with the package on PYTHONPATH (the build's staged copy, build/python) and QNNC_LIB naming
libqnnc_c.so."""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading

import numpy as np

import qnnc


def check_threads(m, prec, check, threads=4, calls=25):
    """One module called from several Python threads at once (the extension releases the GIL,
    so the calls overlap in the C++ runtime): every output equals the sequential call's."""
    xs = [np.random.default_rng(100 + i).standard_normal(m.input_shape, dtype=np.float32)
          for i in range(threads * calls)]
    expect = [m(x) for x in xs]
    got = [None] * len(xs)
    errors = []

    def worker(t):
        try:
            for i in range(t, len(xs), threads):
                got[i] = m(xs[i])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    wrong = sum(g is None or not np.array_equal(g, e) for g, e in zip(got, expect))
    check(f"{prec}: {threads} threads x {calls} calls on one module equal sequential calls", wrong == 0 and not errors,
          f"{wrong} of {len(xs)} differ; {errors[:2]}")


def check_c_api(lib_path, work, x, expect, check):
    """The C interface: compile + run equal the Python package's output; a failing call's
    message is its own thread's while other threads fail with other messages."""
    lib = ctypes.CDLL(lib_path)
    f32p = ctypes.POINTER(ctypes.c_float)
    lib.qnnc_last_error.restype = ctypes.c_char_p
    lib.qnnc_compile_json.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.qnnc_module_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.qnnc_module_free.argtypes = [ctypes.c_void_p]
    lib.qnnc_module_run.argtypes = [ctypes.c_void_p, f32p, ctypes.c_int64, f32p, ctypes.c_int64]
    d = os.path.join(work, "capi_int8")
    rc = lib.qnnc_compile_json(b"builtin:resnet18", d.encode(),
                               json.dumps({"precision": "int8", "input_shape": list(x.shape)}).encode())
    check("C API: compile", rc == 0, lib.qnnc_last_error().decode())
    h = ctypes.c_void_p()
    rc = lib.qnnc_module_load(d.encode(), ctypes.byref(h))
    check("C API: load", rc == 0, lib.qnnc_last_error().decode())
    y = np.empty(expect.shape, dtype=np.float32)
    rc = lib.qnnc_module_run(h, x.ctypes.data_as(f32p), x.size, y.ctypes.data_as(f32p), y.size)
    check("C API: run equals the Python package", rc == 0 and np.array_equal(y, expect),
          lib.qnnc_last_error().decode())
    errors = []

    def bad_caller(base):
        z = np.zeros(8, dtype=np.float32)
        out = np.empty(expect.shape, dtype=np.float32)
        for k in range(200):
            n = base + k
            rc = lib.qnnc_module_run(h, z.ctypes.data_as(f32p), n, out.ctypes.data_as(f32p), out.size)
            msg = lib.qnnc_last_error().decode()
            if rc == 0 or f"input has {n} values" not in msg:
                errors.append(f"bad call {n}: rc {rc}, message {msg!r}")

    pool = [threading.Thread(target=bad_caller, args=(1000 * (t + 1),)) for t in range(3)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    check("C API: each thread's last error is its own", not errors, "; ".join(errors[:2]))
    lib.qnnc_module_free(h)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qnnc", required=True, help="path to the qnnc binary")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="qnnc-py-")
    os.makedirs(work, exist_ok=True)
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)

    print(f"qnnc package: {qnnc.__file__}")
    import torch
    import torchvision

    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64), dtype=np.float32)
    xin = os.path.join(work, "x.npy")
    np.save(xin, x)
    int8_out = None
    for prec in ("fp32", "int8"):
        d = os.path.join(work, prec)
        m = qnnc.compile("builtin:resnet18", output_dir=d, input_shape=(1, 3, 64, 64), precision=prec)
        m.set_threads(2)
        y = m(x)
        yout = os.path.join(work, f"y_{prec}.npy")
        subprocess.run([args.qnnc, "run", d, "--input", xin, "--output", yout], check=True, capture_output=True)
        ref = np.load(yout)
        check(f"{prec}: Python call equals `qnnc run`", y.shape == (1, 1000) and np.array_equal(y, ref),
              f"max |diff| {np.abs(y - ref).max():.3g}")
        yt = m(torch.from_numpy(x))
        check(f"{prec}: a torch tensor (DLPack) gives the same output", np.array_equal(yt, y))
        check(f"{prec}: manifest lists the steps and the precision",
              len(m.manifest["steps"]) > 20 and m.precision == prec, m.precision)
        t = m.benchmark(repeat=3, warmup=1)
        check(f"{prec}: benchmark gives a time", t["median_ms"] > 0, f"{t['median_ms']:.2f} ms")
        p = m.profile(repeat=3)
        convs = [r for r in p["rows"] if r["macs"] > 0]
        check(f"{prec}: profile rows with rates and shares of peak",
              len(p["rows"]) > 20 and convs and all(r["peak_pct"] is None or r["peak_pct"] > 0 for r in convs)
              and p["total_ms"] > 0, f"{len(p['rows'])} rows, peaks {sorted(p['peaks'])}")
        conv = next(r["name"] for r in p["rows"] if r["kind"].startswith("conv2d"))
        stmt, asm = m.inspect(conv, "stmt"), m.inspect(conv, "asm")
        check(f"{prec}: inspect gives the loop nest and the assembly of {conv}",
              "for (" in stmt and ("vfmadd" in asm or "vpdpbusd" in asm or "vpmaddubsw" in asm or "vpmaddwd" in asm),
              f"{len(stmt)} / {len(asm)} characters")
        if prec == "int8":
            check("int8: compile summary counts integer layers", m.summary["quantize"]["quantized"] > 10,
                  str(m.summary["quantize"]["quantized"]))
            int8_out = y
            check_threads(m, prec, check)
    # Inputs that are not float32 C-contiguous arrays of the compiled shape.
    try:
        m(x.astype(np.float64))
        check("float64 input rejected", False)
    except qnnc.QnncError as e:
        check("float64 input rejected", "float32" in str(e), str(e))
    try:
        m(np.zeros((1, 3, 32, 32), np.float32))
        check("wrong shape rejected", False)
    except qnnc.QnncError as e:
        check("wrong shape rejected", "compiled for" in str(e), str(e))
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(2, 3)  # non-contiguous view
    try:
        check("a non-contiguous torch view: same output", np.array_equal(m(xt), int8_out))
    except qnnc.QnncError as e:
        check("a non-contiguous torch view: refused with a clear message", "contiguous" in str(e), str(e)[:160])

    # torchvision model as a torch.nn.Module, and as an onnx.ModelProto.
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(num_classes=10).eval()
    xe = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = net(xe).numpy()
    mt = qnnc.compile(net, example_inputs=xe)
    out = mt(xe)
    err = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    check("torch.nn.Module (mobilenet_v2) compiled: output matches PyTorch", err <= 1e-4, f"rel L2 {err:.2e}")
    import onnx
    onnx_path = os.path.join(work, "mnv2.onnx")
    with torch.no_grad():
        torch.onnx.export(net, xe, onnx_path, opset_version=13)
    mp = qnnc.compile(onnx.load(onnx_path))
    check("onnx.ModelProto compiled: same output as from the module", np.array_equal(mp(xe.numpy()), out))
    try:
        qnnc.compile(net)
        check("torch module without example_inputs rejected", False)
    except qnnc.QnncError as e:
        check("torch module without example_inputs rejected", "example_inputs" in str(e), str(e))
    try:
        qnnc.compile(42)
        check("unsupported model object rejected", False)
    except qnnc.QnncError as e:
        check("unsupported model object rejected", "cannot compile" in str(e), str(e))

    # Quantization options through Python: the stem quantized, ties to even, KL calibration,
    # calibration data as an array, the accuracy report.
    calib = np.random.default_rng(5).standard_normal((4, 3, 64, 64), dtype=np.float32)
    d = os.path.join(work, "int8_opts")
    mo = qnnc.compile("builtin:resnet18", output_dir=d, input_shape=(1, 3, 64, 64), precision="int8",
                      quantize_first_conv=True, rounding="tonearest", calib_mode="kl_divergence", calib_data=calib,
                      report=True, report_inputs=4)
    steps = mo.manifest["steps"]
    conv1 = [s for s in steps if s["name"] == "conv1"]
    check("options: first conv quantized", conv1 and conv1[0]["describe"].startswith("conv2d_q"),
          conv1[0]["describe"] if conv1 else "no conv1 step")
    check("options: ties to even in the integer kernels", any("[tonearest]" in s.get("describe", "") for s in steps))
    acc = mo.summary.get("accuracy", {})
    check("options: report=True writes accuracy.json with per-layer SQNR",
          os.path.exists(os.path.join(d, "accuracy.json")) and len(acc.get("layers", [])) > 5,
          f"centered SQNR {acc.get('centered', {}).get('sqnr_db')}")
    for bad, word in (({"rounding": "sideways"}, "rounding"), ({"calib_mod": "minmax"}, "calib_mod"),
                      ({"calib_samples": "many"}, "wrong type")):
        try:
            qnnc.compile("builtin:resnet18", input_shape=(1, 3, 32, 32), precision="int8", **bad)
            check(f"bad option {bad} rejected", False)
        except qnnc.QnncError as e:
            check(f"bad option {bad} rejected", word in str(e), str(e)[:160])
    # A CPU without the module's features (detection faked through the environment): load refuses.
    os.environ["QNNC_CPU_FEATURES"] = "sse2"
    try:
        qnnc.load(os.path.join(work, "fp32"))
        check("module refused on a CPU without its features", False)
    except qnnc.QnncError as e:
        check("module refused on a CPU without its features", "lacks" in str(e), str(e)[:120])
    finally:
        del os.environ["QNNC_CPU_FEATURES"]
    try:
        qnnc.compile(os.path.join(work, "missing.onnx"))
        check("missing model rejected", False)
    except qnnc.QnncError as e:
        check("missing model rejected", "cannot open" in str(e), str(e))

    # Tuning from Python (runs the qnnc command, $QNNC_EXE here), then compiling with the records.
    rec = os.path.join(work, "tune.jsonl")
    if os.path.exists(rec):
        os.remove(rec)
    table = qnnc.tune("builtin:resnet18", rec, input_shape=(1, 3, 32, 32), trials=2, verbose=False)
    mt = qnnc.compile("builtin:resnet18", input_shape=(1, 3, 32, 32), tuning_records=rec)
    tsum = mt.summary["tuning"]
    check("qnnc.tune writes records that compile(tuning_records=) reads",
          "speed-up" in table and tsum["records"] == rec and tsum["tuned"] + tsum["default_best"] > 5, str(tsum)[:160])
    try:
        qnnc.tune("builtin:resnet18", rec, input_shape=(1, 3, 32, 32), trials=2, verbose=False)
        check("tune refuses to overwrite records without resume", False)
    except qnnc.QnncError as e:
        check("tune refuses to overwrite records without resume", "--resume" in str(e), str(e))

    lib = os.environ.get("QNNC_LIB")
    if lib:
        check_c_api(lib, work, x, int8_out, check)
    else:
        check("C API checked (QNNC_LIB names libqnnc_c.so)", False, "QNNC_LIB is not set")
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
