#!/usr/bin/env bash
# `rtnq plan show` on the real GGUF and llama2.c models: tables, later-rules-win across flags and a
# plan file, JSON output, and the refusals (group 128 on SmolLM2's 576-wide inputs, split q/k/v, bad
# files) with exit 1 and a message naming the cause. Usage: plan.sh PATH/TO/rtnq
set -euo pipefail
rtnq="$1"
models="${RTNQ_SOURCE_DIR:?RTNQ_SOURCE_DIR must point at the repository}/models"
smol="$models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
stories="$models/stories260K/stories260K.bin"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() { echo "plan.sh: FAIL: $*" >&2; exit 1; }
expect() {  # expect FILE REGEX: the output must hold a line matching REGEX
  grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "no line matching '$2'"; }
}
refuse() {  # refuse REGEX ARGS...: `rtnq ARGS` must exit 1 with REGEX in its error
  local rc=0
  "$rtnq" "${@:2}" > "$tmp/out.txt" 2> "$tmp/err.txt" || rc=$?
  [[ $rc == 1 ]] || { cat "$tmp/out.txt" "$tmp/err.txt" >&2; fail "'${*:2}' exited $rc, expected 1"; }
  expect "$tmp/err.txt" "$1"
}

if [[ ! -f "$smol" || ! -f "$stories" ]]; then
  echo "plan.sh: models missing under $models (run scripts/fetch-models.sh); skipping"
  exit 0
fi

# SmolLM2: hidden 576 = 4.5 x 128, so the default group 128 cannot work, and 64 can.
"$rtnq" plan show "$smol" --group-size 64 > "$tmp/a.txt"
expect "$tmp/a.txt" '30 layers'
expect "$tmp/a.txt" 'later rules win'
expect "$tmp/a.txt" '^layers +q +k +v +o +gate +up +down$'
expect "$tmp/a.txt" '^0-29 +(int4/64 +){6}int4/64$'
expect "$tmp/a.txt" '^lm_head: keep'
expect "$tmp/a.txt" 'average bits per linear weight: 4\.000 without scales, 4\.250 with'
refuse 'layers 0-29 q, k, v, o, gate, up: in_features 576 is not a multiple of group 128' plan show "$smol"
refuse 'in_features 576' plan show "$smol" --bits 8

# Later rules win, in command-line order across different flags.
"$rtnq" plan show "$smol" --group-size 64 --int8-first 2 --keep 0 --keep last:2:mlp --int8 -1:attn@32 > "$tmp/b.txt"
expect "$tmp/b.txt" '^0 +keep( +keep){6}$'
expect "$tmp/b.txt" '^1 +int8/64( +int8/64){6}$'
expect "$tmp/b.txt" '^2-27 +int4/64( +int4/64){6}$'
expect "$tmp/b.txt" '^28 +(int4/64 +){4}keep +keep +keep$'
expect "$tmp/b.txt" '^29 +(int8/32 +){4}keep +keep +keep$'
"$rtnq" plan show "$smol" --group-size 64 --keep 0 --int8-first 2 > "$tmp/c.txt"
expect "$tmp/c.txt" '^0-1 +int8/64( +int8/64){6}$'

# A plan file, then flags as later rules; TOML and JSON give the same table.
cat > "$tmp/p.toml" <<'EOF'
[base]
bits = 4
group_size = 64
[[rule]]
layers = "first:2"
modules = "all"
precision = "int8"
[[rule]]
layers = "10-12"
modules = "mlp"
precision = "keep"
EOF
cat > "$tmp/p.json" <<'EOF'
{"base": {"bits": 4, "group_size": 64},
 "rules": [{"layers": "first:2", "modules": "all", "precision": "int8"},
           {"layers": "10-12", "modules": "mlp", "precision": "keep"}]}
EOF
"$rtnq" plan show "$smol" "$tmp/p.toml" --keep 1 > "$tmp/d.txt"
expect "$tmp/d.txt" 'p\.toml rule 2'
expect "$tmp/d.txt" '^0 +int8/64( +int8/64){6}$'
expect "$tmp/d.txt" '^1 +keep( +keep){6}$'
expect "$tmp/d.txt" '^10-12 +(int4/64 +){4}keep +keep +keep$'
"$rtnq" plan show "$smol" --plan "$tmp/p.toml" --json > "$tmp/t.json"
"$rtnq" plan show "$smol" --plan "$tmp/p.json" --json > "$tmp/j.json"
python3 - "$tmp/t.json" "$tmp/j.json" <<'PY'
import json, sys
t, j = (json.load(open(p)) for p in sys.argv[1:3])
assert t["table"] == j["table"] and t["plan"] == j["plan"] and t["stats"] == j["stats"], "TOML and JSON plans differ"
assert t["num_layers"] == 30 and t["later_rules_win"] is True
rows = t["table"]["layers"]
covered = [l for r in rows for l in range(r["first"], r["last"] + 1)]
assert covered == list(range(30)), covered
s = t["stats"]
assert s["weights"]["int4"] + s["weights"]["int8"] + s["weights"]["keep"] == s["candidate_weights"]
assert s["original_bytes"] == 2 * 134515008, s  # bf16 parameters of SmolLM2-135M (tied lm_head)
assert 0 < s["predicted_bytes"] < s["original_bytes"]
assert 4.0 < s["avg_bits"] < s["avg_bits_with_scales"] < 16.0
PY

# Refusals: split fused groups, bad flags, a bad file, a quantized tied lm_head.
refuse 'layer 3: q is int8/64 .*but k is int4/64.*qkv_proj' plan show "$smol" --group-size 64 --int8 3:q
refuse 'layers 2-3: gate is .*but up is keep' plan show "$smol" --group-size 64 --keep 2-3:up
refuse 'layer 30 is out of range' plan show "$smol" --group-size 64 --int8 30
refuse 'group-size 100' plan show "$smol" --group-size 100
refuse 'tie' plan show "$smol" --group-size 64 --lm-head int8
printf '[[rule]]\nprecision = "int8"\n[[rule]]\nlayers = "0"\nprecison = "int8"\n' > "$tmp/bad.toml"
refuse "bad\.toml: rule 2: unknown key 'precison'" plan show "$smol" "$tmp/bad.toml"

# stories260K: hidden 64, intermediate 172 (down can be neither grouped by 64 nor packed as int4).
refuse 'layers 0-4 down: in_features 172' plan show "$stories" --group-size 64
"$rtnq" plan show "$stories" --group-size 64 --int8 all:down@-1 > "$tmp/s.txt"
expect "$tmp/s.txt" '5 layers'
expect "$tmp/s.txt" '^0-4 +(int4/64 +){6}int8/ch$'

echo "plan.sh: ok"
