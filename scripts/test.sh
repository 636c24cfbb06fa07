#!/usr/bin/env bash
# Run the test suite (GPU-labelled tests excluded unless a GPU is present).
# Usage: scripts/test.sh [preset]   (default: the preset scripts/setup.sh picked)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-}"
if [ -z "$preset" ]; then
  if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then preset=cuda-release; else preset=cpu-release; fi
fi
export RTNQ_SHARED="${RTNQ_SHARED:-$(cd .. && pwd)/shared}"
cmake --build --preset "$preset" -j "$(nproc)" >/dev/null
scripts/fetch-models.sh >/dev/null
label_args=(-LE gpu)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then label_args=(); fi
ctest --test-dir "build/$preset" --output-on-failure -j "$(nproc)" "${label_args[@]}"
