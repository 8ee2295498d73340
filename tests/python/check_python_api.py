#!/usr/bin/env python3
"""The Python package (python/qnnc over libqnnc_c.so): compile the builtin ResNet-18 small in
fp32 and int8 from Python, call the modules with numpy, and compare with `qnnc run` on the same
input (identical outputs); one module called from 4 threads at once gives the sequential
outputs; errors surface as QnncError (also a module refused on a CPU without its features). Ends with 'N passed, M failed'."""
import argparse
import os
import subprocess
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import qnnc  # noqa: E402


def check_threads(m, prec, check, threads=4, calls=25):
    """One module called from several Python threads at once (ctypes releases the GIL, so the
    calls overlap in the C++ runtime): every output equals the sequential call's bit for bit, and
    a failing call's error message (thread-local in the C API) is its own, not another thread's."""
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

    def bad_caller():
        # Wrong input lengths through the C API while the others run: each message names its own.
        x = np.zeros(8, dtype=np.float32)
        y = np.empty(m.output_shape, dtype=np.float32)
        for k in range(200):
            n = 1000 + k
            rc = qnnc._lib.qnnc_module_run(m._h, x.ctypes.data_as(qnnc._f32p), n, y.ctypes.data_as(qnnc._f32p), y.size)
            msg = qnnc._lib.qnnc_last_error().decode()
            if rc == 0 or f"input has {n} values" not in msg:
                errors.append(f"bad call {n}: rc {rc}, message {msg!r}")

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)] + [threading.Thread(target=bad_caller)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    wrong = sum(g is None or not np.array_equal(g, e) for g, e in zip(got, expect))
    check(f"{prec}: {threads} threads x {calls} calls on one module equal sequential calls", wrong == 0 and not errors,
          f"{wrong} of {len(xs)} differ; {errors[:2]}")


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
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}")

    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64), dtype=np.float32)
    xin = os.path.join(work, "x.npy")
    np.save(xin, x)
    for prec in ("fp32", "int8"):
        d = qnnc.compile("builtin:resnet18", os.path.join(work, prec), input_shape=(1, 3, 64, 64), precision=prec)
        m = qnnc.load(d)
        m.set_threads(2)
        y = m(x)
        yout = os.path.join(work, f"y_{prec}.npy")
        subprocess.run([args.qnnc, "run", d, "--input", xin, "--output", yout], check=True, capture_output=True)
        ref = np.load(yout)
        check(f"{prec}: Python call equals `qnnc run`", y.shape == (1, 1000) and np.array_equal(y, ref),
              f"max |diff| {np.abs(y - ref).max():.3g}")
        check(f"{prec}: manifest lists the steps", len(m.manifest["steps"]) > 20)
        t = m.benchmark(repeat=3, warmup=1)
        check(f"{prec}: benchmark gives a time", t["median_ms"] > 0, f"{t['median_ms']:.2f} ms")
        check_threads(m, prec, check)
    try:
        m(x.astype(np.float64))
        check("float64 input rejected", False)
    except qnnc.QnncError as e:
        check("float64 input rejected", "float32" in str(e), str(e))
    # Quantization options through Python: the stem quantized, ties to even, KL calibration.
    d = qnnc.compile("builtin:resnet18", os.path.join(work, "int8_opts"), input_shape=(1, 3, 64, 64),
                     precision="int8", quantize_first_conv=True, rounding="tonearest", calib_mode="kl_divergence")
    steps = qnnc.load(d).manifest["steps"]
    conv1 = [s for s in steps if s["name"] == "conv1"]
    check("options: first conv quantized", conv1 and conv1[0]["describe"].startswith("conv2d_q"),
          conv1[0]["describe"] if conv1 else "no conv1 step")
    check("options: ties to even in the integer kernels",
          any("[tonearest]" in s.get("describe", "") for s in steps))
    for bad, word in (({"rounding": "sideways"}, "rounding"), ({"calib_mod": "minmax"}, "calib_mod"),
                      ({"calib_samples": "many"}, "wrong type")):
        try:
            qnnc.compile("builtin:resnet18", os.path.join(work, "bad_opts"), input_shape=(1, 3, 32, 32),
                         precision="int8", **bad)
            check(f"bad option {bad} rejected", False)
        except qnnc.QnncError as e:
            check(f"bad option {bad} rejected", word in str(e), str(e))
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
        qnnc.compile(os.path.join(work, "missing.onnx"), os.path.join(work, "bad"))
        check("missing model rejected", False)
    except qnnc.QnncError as e:
        check("missing model rejected", "cannot open" in str(e), str(e))
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
