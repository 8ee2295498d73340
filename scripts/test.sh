#!/usr/bin/env bash
# Set up (packages, venv, build) and run every test: GoogleTest kernel/pass/runtime tests and
# the end-to-end checks against PyTorch. Prints CTest's summary line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root/build"
ctest --output-on-failure -j2 --timeout 1500 "$@"
