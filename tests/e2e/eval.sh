#!/usr/bin/env bash
# `rtnq eval` end to end on stories260K: ARC-Easy and HellaSwag (5 items each) print the harness-style
# table, the JSON agrees with it, --task-file takes any file of a known form, and malformed task files
# and bad flags fail with a message naming the file and line or the flag.
set -euo pipefail
RTNQ="$1"
SRC="${RTNQ_SOURCE_DIR:?}"
SHARED="${RTNQ_SHARED:-$SRC/../shared}"
export RTNQ_SHARED="$SHARED"
MODEL="$SRC/models/stories260K/stories260K.bin"
[ -f "$MODEL" ] || MODEL="$SHARED/models/stories260K/stories260K.bin"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$RTNQ" eval "$MODEL" --tasks arc_easy,hellaswag --limit 5 --json "$TMP/r.json" --per-item >"$TMP/table.txt" 2>"$TMP/err.txt"
cat "$TMP/table.txt"
grep -q "^| Task" "$TMP/table.txt"
grep -Eq "^\| arc_easy +\| acc +\| [01]\.[0-9]{4} \| ± \| [01]\.[0-9]{4} \| +5/2376 \|" "$TMP/table.txt"
grep -Eq "^\| hellaswag +\| acc +\| [01]\.[0-9]{4} \| ± \| [01]\.[0-9]{4} \| +5/10042 \|" "$TMP/table.txt"
[ "$(grep -c "acc_norm" "$TMP/table.txt")" -eq 2 ]
grep -q "ETA" "$TMP/err.txt"
python3 - "$TMP/r.json" "$TMP/table.txt" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
table = open(sys.argv[2]).read()
for name in ("arc_easy", "hellaswag"):
    r = j["results"][name]
    assert r["n"] == 5, r
    items = r["items"]
    assert len(items) == 5 and all(len(i["choices"]) == 4 for i in items)
    acc = sum(max(range(4), key=lambda k: i["choices"][k]["loglik"]) == i["gold"] for i in items) / 5
    assert abs(acc - r["acc"]) < 1e-12, (acc, r["acc"])
    assert f"{r['acc']:.4f}" in table
    assert all(c["loglik"] < 0 for i in items for c in i["choices"])
print("eval e2e: json agrees with table")
EOF

# Any file in a known form works by path; the jsonl copy of a named task scores like the task.
head -n 3 "$SHARED/data/zeroshot/winogrande.jsonl" >"$TMP/wino3.jsonl"
"$RTNQ" eval "$MODEL" --task-file "$TMP/wino3.jsonl" >"$TMP/wino.txt" 2>/dev/null
grep -Eq "^\| wino3 +\| acc +\|" "$TMP/wino.txt"
if grep -q "acc_norm" "$TMP/wino.txt"; then
  echo "winogrande (partial scoring) must report acc only" >&2
  exit 1
fi

# Malformed files: the message names the file and line.
{ head -n 2 "$SHARED/data/zeroshot/arc_easy.jsonl"; echo '{"query": "Question: q", "choices": ["a", "b"], "gold": 7}'; } >"$TMP/bad.jsonl"
if "$RTNQ" eval "$MODEL" --task-file "$TMP/bad.jsonl" >/dev/null 2>"$TMP/bad.err"; then
  echo "expected a gold index out of range to fail" >&2
  exit 1
fi
grep -q "bad.jsonl:3: gold 7 is out of range" "$TMP/bad.err"
if "$RTNQ" eval "$MODEL" --tasks mmlu >/dev/null 2>"$TMP/task.err"; then
  echo "expected an unknown task to fail" >&2
  exit 1
fi
grep -q "unknown task 'mmlu'" "$TMP/task.err"
if "$RTNQ" eval "$MODEL" --tasks arc_easy --limit -2 >/dev/null 2>"$TMP/limit.err"; then
  echo "expected --limit -2 to fail" >&2
  exit 1
fi
grep -q -- "--limit" "$TMP/limit.err"
echo "eval e2e: ok"
