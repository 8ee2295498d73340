#!/usr/bin/env python3
"""Cross-compilation check: builtin ResNet-18 (small input) compiled for the host, rpi4 and rpi5,
in fp32, int8, int1 and int2; the Pi bundles run under qemu-aarch64.

Asserts: int8, int1 and int2 outputs of both boards are bit-identical to the host's (int8 also for torchvision's
MobileNetV2, EfficientNet-B0, DenseNet-121 and ShuffleNetV2 at 64x64, and for a small network whose
output channels 4-lane vectors do not divide); fp32 within 1e-4 relative
L2; the rpi5 int8 kernels use sdot/udot and the rpi4 ones do not; an rpi5 bundle started on a
Cortex-A72 stops with a message naming the missing feature. Ends with 'N passed, M failed'.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

MODEL = "builtin:resnet18"
SHAPE = "1,3,64,64"


def sh(cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qnnc", required=True, help="path to the qnnc binary")
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--models", default="mobilenet_v2,efficientnet_b0,densenet121,shufflenet_v2_x0_5",
                    help="torchvision models checked int8 bit-identical on both boards (default: %(default)s)")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="qnnc-cross-")
    os.makedirs(work, exist_ok=True)
    q = args.qnnc

    x = np.random.default_rng(7).standard_normal((1, 3, 64, 64)).astype(np.float32)
    xin = os.path.join(work, "x.npy")
    np.save(xin, x)

    outs = {}
    for target in ("host", "rpi4", "rpi5"):
        for prec in ("fp32", "int8", "int1", "int2"):
            mod = os.path.join(work, f"{target}_{prec}")
            cmd = [q, "compile", MODEL, "--input-shape", SHAPE, "-o", mod, "-q", "--target", target]
            if prec != "fp32":
                cmd += ["--quantize", prec]
            sh(cmd)
            y = os.path.join(work, f"y_{target}_{prec}.npy")
            if target == "host":
                sh([q, "run", mod, "--input", xin, "--output", y])
            else:
                r = sh([q, "emulate", mod, "--repeat", "1", "--warmup", "0", "--threads", "2", "--input", xin,
                        "--output", y])
                print(r.stdout.strip())
            outs[(target, prec)] = np.load(y)

    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}")

    for board in ("rpi4", "rpi5"):
        # int1: bit-serial layers handing bit planes to each other, threshold epilogues, on
        # both sides; int2: bit-serial on ARM, the int8 kernel with packed weights on x86.
        for prec in ("int8", "int1", "int2"):
            a, b = outs[("host", prec)], outs[(board, prec)]
            check(f"{board} {prec} bit-identical to host", np.array_equal(a, b), f"max |diff| {np.abs(a - b).max():.3g}")
        a, b = outs[("host", "fp32")], outs[(board, "fp32")]
        rel = float(np.linalg.norm(a - b) / np.linalg.norm(a))
        check(f"{board} fp32 within 1e-4 of host", rel <= 1e-4, f"rel L2 {rel:.3g}")

    def dot_count(board):
        mod = os.path.join(work, f"{board}_int8")
        steps = sh([q, "inspect", mod]).stdout.splitlines()
        layer = next(l.split()[1] for l in steps if "conv2d_q" in l)
        asm = sh([q, "inspect", mod, "--asm", "--layer", layer]).stdout
        return sum(1 for l in asm.splitlines() if l.strip().startswith(("sdot", "udot")))

    n5, n4 = dot_count("rpi5"), dot_count("rpi4")
    check("rpi5 int8 kernels use sdot/udot", n5 > 0, f"{n5} dot-product instructions")
    check("rpi4 int8 kernels have no sdot/udot", n4 == 0, f"{n4} dot-product instructions")

    r = sh([q, "emulate", os.path.join(work, "rpi5_int8"), "--board", "rpi4", "--repeat", "1", "--warmup", "0"],
           check=False)
    msg = r.stderr.lower()
    check("rpi5 bundle on cortex-a72 stops with a clear message",
          r.returncode > 0 and "dot product" in msg and "lacks" in msg, f"exit {r.returncode}")

    def int8_matches_host(name, label, onnx, extra=()):
        """Compile `onnx` in int8 for the host and both boards, run the boards' bundles under QEMU,
        and check each board's output bit-identical to the host's."""
        mb = {}
        for target in ("host", "rpi4", "rpi5"):
            mod = os.path.join(work, f"{name}_{target}_int8")
            r = sh([q, "compile", onnx, "-o", mod, "-q", "--target", target, "--quantize", "int8", *extra], check=False)
            if r.returncode != 0:
                check(f"{label} {target} int8 compiles", False, r.stderr.strip().splitlines()[-1] if r.stderr else "")
                continue
            y = os.path.join(work, f"y_{name}_{target}.npy")
            if target == "host":
                sh([q, "run", mod, "--input", xin, "--output", y])
            else:
                sh([q, "emulate", mod, "--repeat", "1", "--warmup", "0", "--threads", "2", "--input", xin,
                    "--output", y])
            mb[target] = np.load(y)
        for board in ("rpi4", "rpi5"):
            if "host" in mb and board in mb:
                a, b = mb["host"], mb[board]
                check(f"{label} {board} int8 bit-identical to host", np.array_equal(a, b),
                      f"max |diff| {np.abs(a - b).max():.3g}")

    # Networks beyond ResNets, exported from torchvision, int8 bit-identical on both boards:
    # MobileNetV2 (depthwise integer kernels, ReLU6 clamps), EfficientNet-B0 (SiLU and
    # squeeze-and-excitation in fp32 between integer convolutions), DenseNet-121 (concats),
    # ShuffleNetV2 (channel shuffle, splits).
    import models  # torch + torchvision, only needed here
    for name in args.models.split(","):
        onnx = os.path.join(work, f"{name}_64.onnx")
        models.export_onnx(models.make_torchvision(name, size=64), onnx, 64)
        int8_matches_host(name, name, onnx)

    # Output channels that the Pis' 4-lane vectors do not divide (18 and 30, as in RegNet-Y's
    # squeeze-and-excitation layers): their int8 kernels once failed to compile for ARM.
    import torch
    torch.manual_seed(0)
    se = torch.nn.Sequential(torch.nn.Conv2d(3, 72, 3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                             torch.nn.Conv2d(72, 18, 1), torch.nn.ReLU(), torch.nn.Conv2d(18, 30, 1), torch.nn.ReLU(),
                             torch.nn.Conv2d(30, 72, 1)).eval()
    onnx = os.path.join(work, "odd_channels.onnx")
    models.export_onnx(se, onnx, 64)
    int8_matches_host("odd_channels", "odd channels (72 -> 18 -> 30)", onnx, ["--quantize-first-conv"])

    # Grouped convolutions as RegNet's and ResNeXt's: groups of 24 and 56 (lanes that do not
    # divide a group: a last vector over zero-padded weights), an odd 1x1 of 40 channels per
    # group, stride 2; once with a group's input channels in pairs (the AVX2 default, vpmaddwd
    # on x86), forced on the boards too.
    grouped = torch.nn.Sequential(torch.nn.Conv2d(3, 48, 3, 2, 1), torch.nn.ReLU(),
                                  torch.nn.Conv2d(48, 48, 3, 1, 1, groups=2), torch.nn.ReLU(),
                                  torch.nn.Conv2d(48, 112, 3, 2, 1, groups=2), torch.nn.ReLU(),
                                  torch.nn.Conv2d(112, 120, 3, 1, 1, groups=8), torch.nn.ReLU(),
                                  torch.nn.Conv2d(120, 120, 1, 1, 0, groups=3), torch.nn.ReLU(),
                                  torch.nn.Conv2d(120, 45, 3, 1, 1, groups=3)).eval()
    onnx = os.path.join(work, "grouped.onnx")
    models.export_onnx(grouped, onnx, 64)
    int8_matches_host("grouped", "grouped (groups of 24, 56, 14, 40)", onnx, ["--quantize-first-conv"])
    int8_matches_host("grouped_pairs", "grouped, channel pairs", onnx,
                      ["--quantize-first-conv", "--knob", "dwconv2d_q.pairs=1"])

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
