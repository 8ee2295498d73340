#!/usr/bin/env python3
"""The Python package (python/qnnc over libqnnc_c.so): compile the builtin ResNet-18 small in
fp32 and int8 from Python, call the modules with numpy, and compare with `qnnc run` on the same
input (identical outputs); errors surface as QnncError. Ends with 'N passed, M failed'."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import qnnc  # noqa: E402


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
