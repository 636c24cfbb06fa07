#!/usr/bin/env bash
# `rtnq generate` end to end: greedy stories260K reproduces llama2.c's output byte for byte, a
# sampled run is repeatable under a seed, and bad flags fail with a message naming the flag.
set -euo pipefail
RTNQ="$1"
SRC="${RTNQ_SOURCE_DIR:?}"
SHARED="${RTNQ_SHARED:-$SRC/../shared}"
MODEL="$SHARED/models/stories260K/stories260K.bin"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
if [ ! -f "$MODEL" ]; then
  echo "generate.sh: shared model $MODEL is missing (set RTNQ_SHARED to the folder that holds models/ and data/)" >&2
  exit 1
fi

if ! "$RTNQ" generate "$MODEL" -n 200 >"$TMP/greedy.txt" 2>"$TMP/greedy.err"; then
  cat "$TMP/greedy.err" >&2
  exit 1
fi
cmp "$TMP/greedy.txt" "$SHARED/models/stories260K/expected-greedy.txt"
grep -q "tokens/s" "$TMP/greedy.err"

"$RTNQ" generate "$MODEL" --prompt "Once upon a time" -n 40 --temp 0.9 --top-p 0.9 --seed 7 >"$TMP/a.txt" 2>/dev/null
"$RTNQ" generate "$MODEL" --prompt "Once upon a time" -n 40 --temp 0.9 --top-p 0.9 --seed 7 --threads 1 >"$TMP/b.txt" 2>/dev/null
cmp "$TMP/a.txt" "$TMP/b.txt"
grep -q "^Once upon a time" "$TMP/a.txt"

if "$RTNQ" generate "$MODEL" --top-p 1.5 >/dev/null 2>"$TMP/bad.err"; then
  echo "expected --top-p 1.5 to fail" >&2
  exit 1
fi
grep -q -- "--top-p" "$TMP/bad.err"
if "$RTNQ" generate "$TMP/missing.bin" >/dev/null 2>"$TMP/missing.err"; then
  echo "expected a missing model to fail" >&2
  exit 1
fi
grep -q "missing.bin" "$TMP/missing.err"
echo "generate e2e: ok"
