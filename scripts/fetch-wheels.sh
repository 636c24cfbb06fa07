#!/usr/bin/env bash
# Download the Python wheels the GPU-machine checks need into .whl/ (git-ignored), for carrying to a
# machine that cannot reach PyPI: compressed-tensors and its dependencies missing from the GPU image,
# and gguf (transformers reads GGUF files with it).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for spec in compressed-tensors==0.20.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
            typing-inspection==0.4.5 typing-extensions==4.16.0 loguru==0.7.3 gguf==0.19.0; do
  name=${spec%%==*}
  ls .whl/ | grep -qi "^${name//-/_}-" && continue
  python3 -m pip download -q --no-deps "${plat[@]}" -d .whl "$spec"
done
ls .whl
