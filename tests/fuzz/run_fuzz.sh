#!/usr/bin/env bash
# Builds and runs qnnc's libFuzzer targets (docs/fuzzing.md). Called by ctest (tests/CMakeLists.txt):
#
#   run_fuzz.sh setup                 configure/build build-fuzz/ (clang++, ASan+UBSan+libFuzzer),
#                                     write the seed corpora, compile the module fuzz_module loads
#   run_fuzz.sh run TARGET SECONDS    fuzz TARGET (onnx, npy or module) for SECONDS; exit 1 on a crash
#
# Environment: QNNC_FUZZ_BUILD (default <repo>/build-fuzz), PYTHON (the venv's python, for
# CMake's Halide/ONNX lookup and the seeds), QNNC (the qnnc binary of the main build, for the
# module seed), QNNC_CACHE_DIR (kernel cache for that compile). Extra arguments after SECONDS
# go to libFuzzer (e.g. -jobs=2, -seed=1).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
fb=${QNNC_FUZZ_BUILD:-$root/build-fuzz}
python=${PYTHON:-$root/.venv/bin/python}

die() {
  echo "run_fuzz.sh: $*" >&2
  exit 1
}

setup() {
  command -v clang++ >/dev/null || die "clang++ not found: install Debian's clang and libclang-rt-14-dev (bash scripts/setup.sh does)"
  local cmake=cmake  # the venv's (scripts/setup.sh installs CMake >= 3.28 there)
  [ -x "$(dirname "$python")/cmake" ] && cmake=$(dirname "$python")/cmake
  mkdir -p "$fb"
  if [ ! -f "$fb/CMakeCache.txt" ]; then
    "$cmake" -S "$root" -B "$fb" -DQNNC_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
      -DPython3_EXECUTABLE="$python" >"$fb/configure.log" 2>&1 ||
      { tail -30 "$fb/configure.log" >&2; rm -f "$fb/CMakeCache.txt"; die "configuring $fb failed (is libclang-rt-14-dev installed?)"; }
  fi
  "$cmake" --build "$fb" -j"$(nproc)" >"$fb/build.log" 2>&1 || { tail -50 "$fb/build.log" >&2; die "building $fb failed"; }

  # Seeds: small models, arrays and the graph.json of a compiled module, made fresh each time so
  # they follow the current formats.
  rm -rf "$fb/seeds"
  mkdir -p "$fb/seeds/module"
  "$python" "$root/tests/fuzz/make_seeds.py" "$fb/seeds"
  local qnnc=${QNNC:-$root/build/qnnc}
  [ -x "$qnnc" ] || die "no qnnc binary at $qnnc (build the main tree first, or set QNNC)"
  rm -rf "$fb/seed-module"
  "$qnnc" compile "$fb/seeds/module_model.onnx" -o "$fb/seed-module" -q >/dev/null
  cp "$fb/seed-module/graph.json" "$fb/seeds/module/graph.json"
  echo "run_fuzz.sh: built $fb/tests/fuzz/fuzz_{onnx,npy,module}; seeds in $fb/seeds"
}

run() {
  local t=$1 secs=$2
  shift 2
  local bin=$fb/tests/fuzz/fuzz_$t
  [ -x "$bin" ] || die "$bin is missing: run '$0 setup' first"
  [ -d "$fb/seeds/$t" ] || die "no seeds in $fb/seeds/$t: run '$0 setup' first"
  local corpus=$fb/corpus/$t artifacts=$fb/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  export QNNC_FUZZ_MODULE=$fb/seed-module
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
  local log=$fb/fuzz_$t.log rc=0
  # New inputs go to the first directory (kept between runs), the seeds are read only.
  "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$root/tests/fuzz/$t.dict" -artifact_prefix="$artifacts/" "$@" "$corpus" "$fb/seeds/$t" >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
  if [ "$rc" != 0 ]; then
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -60 >&2
    echo "run_fuzz.sh: fuzz_$t FAILED (exit $rc); full log $log, inputs in $artifacts;" \
      "reproduce with: QNNC_FUZZ_MODULE=$fb/seed-module $bin $artifacts/<file>" >&2
    exit 1
  fi
  echo "run_fuzz.sh: fuzz_$t: no crash in $secs s; corpus $(ls "$corpus" | wc -l) files"
}

case "${1:-}" in
  setup) setup ;;
  run)
    [ $# -ge 3 ] || die "usage: $0 run onnx|npy|module SECONDS [libFuzzer options]"
    shift
    run "$@"
    ;;
  *) die "usage: $0 setup | run onnx|npy|module SECONDS [libFuzzer options]" ;;
esac
