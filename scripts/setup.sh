#!/usr/bin/env bash
# One-time (and idempotent) set-up: install build dependencies by Debian package name, then configure
# and build. Usage: scripts/setup.sh [preset]   (default: cuda-release if nvcc is found, else cpu-release)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build pkg-config git
          nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev libtomlplusplus-dev
          libgtest-dev libgmock-dev libbenchmark-dev bzip2 libbz2-dev python3 python3-pip)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

preset="${1:-}"
if [ -z "$preset" ]; then
  if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then preset=cuda-release; else preset=cpu-release; fi
fi
if [ "$preset" = cuda-release ] && ! command -v nvcc >/dev/null 2>&1; then export PATH="/usr/local/cuda/bin:$PATH"; fi
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
# build/rtnq points at the release CLI (the sanitizer build is for tests only).
[ "$preset" = cpu-debug ] || ln -sfn "$preset/tools/rtnq" build/rtnq
scripts/fetch-models.sh >/dev/null
echo "setup: built build/$preset; CLI at build/rtnq; models in models/"
