#!/usr/bin/env bash
# Set up, then the main job: compile the built-in ResNet-50 for this host in fp32 and int8,
# show the int8 model's accuracy against fp32, benchmark both, and compare with ONNX Runtime
# and PyTorch on the same architecture exported from torchvision.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
mkdir -p out
export QNNC_CACHE_DIR="${QNNC_CACHE_DIR:-$root/build/kernel-cache}"

echo "== qnnc compile builtin:resnet50: fp32 and int8 =="
build/qnnc compile builtin:resnet50 -o out/resnet50_fp32
build/qnnc compile builtin:resnet50 -o out/resnet50_int8 --quantize int8 --report --report-inputs 8

echo "== qnnc bench: fp32 vs int8 =="
for t in 1 2; do
  build/qnnc bench out/resnet50_fp32 --threads "$t" --repeat 20 --json out/fp32_t$t.json
  build/qnnc bench out/resnet50_int8 --threads "$t" --repeat 20 --json out/int8_t$t.json
done
.venv/bin/python - <<'PY'
import json
print(f"{'threads':>7} {'fp32 ms':>9} {'int8 ms':>9} {'int8 speedup':>13}")
for t in (1, 2):
    f = json.load(open(f"out/fp32_t{t}.json"))["median_ms"]
    i = json.load(open(f"out/int8_t{t}.json"))["median_ms"]
    print(f"{t:>7} {f:>9.2f} {i:>9.2f} {f / i:>12.2f}x")
PY

echo "== against ONNX Runtime and PyTorch (torchvision ResNet-50 via ONNX, same calibration data) =="
.venv/bin/python bench/bench_int8.py --qnnc build/qnnc --model resnet50 --size 224 --threads 1,2 \
  --repeat 20 --precisions fp32,int8,int8-all,int1 --workdir out/bench_int8
