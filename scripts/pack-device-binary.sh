#!/usr/bin/env bash
# Copy the CPU build of the rtnq CLI and the shared libraries it needs that the GPU machine's image
# lacks into .devbin/ (git-ignored), so device-side checks can run it: that image has no Debian
# -dev packages to build it there.
set -euo pipefail
cd "$(dirname "$0")/.."
# usage: scripts/pack-device-binary.sh [BUILD_DIR]   (default build/cpu-release)
dir=${1:-build/cpu-release}
bin="$dir/tools/rtnq"
[ -x "$bin" ] || { echo "build $bin first (scripts/setup.sh cpu-release)" >&2; exit 1; }
rm -rf .devbin && mkdir -p .devbin/lib
cp "$bin" .devbin/rtnq
for lib in $(ldd "$bin" | awk '/=>/ {print $3}' | grep -E 'libfmt|libtomlplusplus|libpcre2'); do cp -L "$lib" .devbin/lib/; done
ls -la .devbin .devbin/lib
