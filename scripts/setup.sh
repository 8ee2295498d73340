#!/usr/bin/env bash
# One-shot set-up: system packages, a Python venv (Halide, CMake, ONNX, ONNX Runtime on top of
# Debian's PyTorch), then configure and build qnnc into build/. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

apt_pkgs="build-essential python3-venv python3-torch python3-torchvision libprotobuf-dev
  protobuf-compiler nlohmann-json3-dev libcli11-dev libgtest-dev g++-aarch64-linux-gnu qemu-user
  clang libclang-rt-14-dev
  chromium python3-sklearn libxgboost-dev openssh-server"   # openssh-server: the tuner's ssh runner test (tests/python/check_tune_runners.py); clang + libFuzzer/ASan/UBSan runtimes: the fuzz tests (tests/fuzz); chromium: the report's browser test; python3-sklearn: the digits data (tests/python/digits.py); libxgboost-dev: the tuner's cost model
missing=""
for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "[setup] apt-get install:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q $missing
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv (sees Debian's torch/torchvision)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import halide, onnx, onnxruntime, cmake, nanobind, scikit_build_core, plotly, playwright, tqdm" >/dev/null 2>&1; then
  echo "[setup] pip install halide cmake onnx onnxruntime numpy<2 nanobind scikit-build-core plotly playwright tqdm"
  .venv/bin/pip install -q "halide==21.*" "cmake>=3.28" onnx onnxruntime "numpy<2" nanobind scikit-build-core plotly \
    playwright tqdm
fi

echo "[setup] configure + build (Release)"
.venv/bin/cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$root/.venv/bin/python" >/dev/null
.venv/bin/cmake --build build -j"$(nproc)"

# The Python package into the venv (`import qnnc`, and the `qnnc` command in .venv/bin): the
# wheel builds in build/py-*, which persists, so running this again only relinks.
echo "[setup] pip install . (the qnnc Python package) into .venv"
.venv/bin/pip wheel -q --no-build-isolation --no-deps -w build/dist .
.venv/bin/pip install -q --no-deps --force-reinstall build/dist/qnnc-*.whl
