#!/usr/bin/env bash
# Set up, then the main job: compile the built-in ResNet-50 for this host with qnnc and
# benchmark it (fp32; int8 once quantization lands), next to ONNX Runtime and PyTorch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
mkdir -p out
export QNNC_CACHE_DIR="${QNNC_CACHE_DIR:-$root/build/kernel-cache}"
echo "== qnnc compile builtin:resnet50 (fp32) =="
build/qnnc compile builtin:resnet50 -o out/resnet50_fp32
for t in 1 2; do build/qnnc bench out/resnet50_fp32 --threads "$t" --repeat 20; done
echo "== the same architecture from torchvision via ONNX, against ONNX Runtime and PyTorch =="
.venv/bin/python bench/bench_fp32.py --qnnc build/qnnc --model resnet50 --size 224 --threads 1,2 \
  --repeat 20 --workdir out/bench_fp32
