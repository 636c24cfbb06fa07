#!/usr/bin/env bash
# `rtnq inspect` on the real llama2.c and GGUF models, and a truncated checkpoint that must fail
# with exit 1 and a message naming the file. Usage: inspect.sh PATH/TO/rtnq
set -euo pipefail
rtnq="$1"
models="${RTNQ_SOURCE_DIR:?RTNQ_SOURCE_DIR must point at the repository}/models"
stories="$models/stories260K/stories260K.bin"
smol="$models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() { echo "inspect.sh: FAIL: $*" >&2; exit 1; }
expect() {  # expect FILE REGEX: the output must hold a line matching REGEX
  grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "no line matching '$2'"; }
}

if [[ ! -f "$stories" || ! -f "$smol" ]]; then
  echo "inspect.sh: models missing under $models (run scripts/fetch-models.sh); skipping"
  exit 0
fi

# llama2.c: README facts of shared/ (dim 64, hidden 172, 5 layers, 8/4 heads, vocab 512, shared classifier).
"$rtnq" inspect "$stories" > "$tmp/s.txt"
expect "$tmp/s.txt" '^format: +llama2c$'
expect "$tmp/s.txt" '^layers: +5$'
expect "$tmp/s.txt" '^hidden: +64$'
expect "$tmp/s.txt" '^heads: +8 \(kv heads 4, head_dim 8\)$'
expect "$tmp/s.txt" '^intermediate: +172$'
expect "$tmp/s.txt" '^vocab: +512$'
expect "$tmp/s.txt" '^tied embeddings: +yes$'
expect "$tmp/s.txt" '^dtype: +F32$'
expect "$tmp/s.txt" '^parameters: +260,032$'
expect "$tmp/s.txt" '^tokenizer: +sentencepiece BPE \(512 tokens'
expect "$tmp/s.txt" '^quantization: +none$'

"$rtnq" inspect "$stories" --tensors > "$tmp/st.txt"
expect "$tmp/st.txt" '^model\.layers\.4\.mlp\.down_proj\.weight +F32 +F32 +\[64, 172\] +44032$'
expect "$tmp/st.txt" '^model\.layers\.0\.self_attn\.k_proj\.weight .*\[32, 64\]'
[[ "$(grep -c '^model\.layers\.' "$tmp/st.txt")" == 45 ]] || fail "expected 45 layer tensors"

"$rtnq" inspect "$stories" --json --tensors > "$tmp/s.json"
python3 - "$tmp/s.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "llama2c" and j["layers"] == 5 and j["kv_heads"] == 4, j
assert j["parameters"] == sum(eval("*".join(map(str, t["shape"]))) for t in j["tensors"]), "parameter count != sum of shapes"
assert len(j["tensors"]) == 47 and j["tied_embeddings"] is True
PY

# GGUF (SmolLM2-135M, Q4_1): 30 layers, 576 hidden, 9/3 heads, vocab 49152.
"$rtnq" inspect "$smol" > "$tmp/g.txt"
expect "$tmp/g.txt" '^format: +gguf$'
expect "$tmp/g.txt" '^layers: +30$'
expect "$tmp/g.txt" '^hidden: +576$'
expect "$tmp/g.txt" '^heads: +9 \(kv heads 3, head_dim 64\)$'
expect "$tmp/g.txt" '^intermediate: +1536$'
expect "$tmp/g.txt" '^vocab: +49152$'
expect "$tmp/g.txt" '^rope: +theta 100000'
expect "$tmp/g.txt" '^parameters: +134,515,008$'
expect "$tmp/g.txt" '^tokenizer: +gpt2 byte-level BPE \(49152 tokens'
"$rtnq" inspect "$smol" --tensors > "$tmp/gt.txt"
expect "$tmp/gt.txt" '^model\.layers\.0\.self_attn\.q_proj\.weight +Q4_1'

# A tiny compressed-tensors checkpoint made here (one packed q_proj): the parameter count comes from
# weight_shape, and the quantization summary lists the config group.
python3 - "$tmp/hf" <<'PY'
import json, struct, sys, os
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
H, I, V, NH, NKV, HD = 8, 16, 32, 2, 1, 4
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
       "num_hidden_layers": 1, "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD, "vocab_size": V,
       "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
       "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
       "quantization_config": {"quant_method": "compressed-tensors", "format": "pack-quantized",
           "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "symmetric": True,
                                                                           "strategy": "group", "group_size": 8}}},
           "ignore": ["lm_head"]}}
json.dump(cfg, open(f"{out}/config.json", "w"))
tensors = []  # (name, dtype, shape, bytes)
def f32(name, shape):
    n = 1
    for d in shape: n *= d
    tensors.append((name, "F32", shape, struct.pack(f"<{n}f", *[(i % 7 - 3) * 0.25 for i in range(n)])))
f32("model.embed_tokens.weight", [V, H])
p = "model.layers.0."
f32(p + "input_layernorm.weight", [H]); f32(p + "post_attention_layernorm.weight", [H])
tensors.append((p + "self_attn.q_proj.weight_packed", "I32", [NH * HD, H * 4 // 32], struct.pack("<8i", *range(1, 9))))
tensors.append((p + "self_attn.q_proj.weight_scale", "F32", [NH * HD, 1], struct.pack("<8f", *[0.5] * 8)))
tensors.append((p + "self_attn.q_proj.weight_shape", "I64", [2], struct.pack("<2q", NH * HD, H)))
f32(p + "self_attn.k_proj.weight", [NKV * HD, H]); f32(p + "self_attn.v_proj.weight", [NKV * HD, H])
f32(p + "self_attn.o_proj.weight", [H, NH * HD])
f32(p + "mlp.gate_proj.weight", [I, H]); f32(p + "mlp.up_proj.weight", [I, H]); f32(p + "mlp.down_proj.weight", [H, I])
f32("model.norm.weight", [H])
header, off, blob = {}, 0, b""
for name, dt, shape, data in tensors:
    header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
    off += len(data); blob += data
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(f"{out}/model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + blob)
PY
"$rtnq" inspect "$tmp/hf" > "$tmp/h.txt"
expect "$tmp/h.txt" '^format: +hf-safetensors$'
expect "$tmp/h.txt" '^parameters: +856$'
expect "$tmp/h.txt" '^quantization: +compressed-tensors pack-quantized; group_0: int4, group size 8, targets \[Linear\]; ignore list: 1 entries$'
"$rtnq" inspect "$tmp/hf/model.safetensors" --json > "$tmp/h.json"
python3 - "$tmp/h.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["parameters"] == 856 and j["quantization"]["config_groups"][0]["bits"] == 4, j
PY

# A truncated llama2.c checkpoint: exit 1, message naming the file and the expected size.
head -c 1000000 "$stories" > "$tmp/truncated.bin"
set +e
"$rtnq" inspect "$tmp/truncated.bin" > "$tmp/t.out" 2> "$tmp/t.err"
rc=$?
set -e
[[ $rc == 1 ]] || fail "truncated checkpoint: exit $rc, expected 1"
grep -q "$tmp/truncated.bin" "$tmp/t.err" || { cat "$tmp/t.err" >&2; fail "error does not name the file"; }
grep -q "expected 1056540 bytes" "$tmp/t.err" || { cat "$tmp/t.err" >&2; fail "error does not give the expected size"; }

# A path that does not exist: exit 1.
set +e
"$rtnq" inspect "$tmp/none.bin" 2> "$tmp/n.err"
rc=$?
set -e
[[ $rc == 1 ]] || fail "missing file: exit $rc, expected 1"
echo "inspect.sh: ok"
