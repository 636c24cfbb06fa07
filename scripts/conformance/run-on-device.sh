#!/usr/bin/env bash
# Runs on the GPU machine (it has torch + transformers), from the repo root, with .whl/ and .devbin/
# carried (scripts/fetch-wheels.sh, scripts/pack-device-binary.sh). Writes logs to $OUT if set.
set -uo pipefail
OUT=${OUT:-/tmp/rtnq-conformance}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
export LD_LIBRARY_PATH=$PWD/.devbin/lib
R=$PWD/.devbin/rtnq
M=/tmp/rtnq-models
rm -rf $M && mkdir -p $M
python3 scripts/conformance/make_tiny_models.py $M > "$OUT/make.log" 2>&1 || { cat "$OUT/make.log"; exit 1; }
status=0
run() { echo "+ $*" >> "$OUT/rtnq.log"; "$@" >> "$OUT/rtnq.log" 2>&1 || { echo "FAILED: $*"; tail -5 "$OUT/rtnq.log"; status=1; }; }
run $R inspect $M/tiny-llama-bf16
run $R quantize $M/tiny-llama-bf16 $M/llama-int4-g128 --bits 4 --group-size 128 --no-progress
run $R quantize $M/tiny-llama-bf16 $M/llama-int8-ch --bits 8 --group-size -1 --no-progress
run $R quantize $M/tiny-llama-bf16 $M/llama-mixed --bits 4 --group-size 64 --int8 first:1 --keep last:1:mlp --lm-head int8 --no-progress
run $R quantize $M/tiny-qwen2-fp16 $M/qwen2-int4-g32 --bits 4 --group-size 32 --int8 0:down --no-progress
for q in llama-int4-g128 llama-int8-ch llama-mixed; do
  python3 scripts/conformance/check_compressed_tensors.py $M/tiny-llama-bf16 $M/$q --json "$OUT/$q.json" > "$OUT/$q.log" 2>&1 || status=1
  tail -1 "$OUT/$q.log"
done
python3 scripts/conformance/check_compressed_tensors.py $M/tiny-qwen2-fp16 $M/qwen2-int4-g32 --json "$OUT/qwen2-int4-g32.json" > "$OUT/qwen2.log" 2>&1 || status=1
tail -1 "$OUT/qwen2.log"
python3 - "$OUT" <<'PY'
import json, glob, sys
print(f"{'checkpoint':<18} {'modules':>7} {'int≠':>5} {'scale≠':>6} {'deq≠':>5} {'kept≠':>5} {'HF logits rel diff':>18} {'HF top1':>7}")
for f in sorted(glob.glob(sys.argv[1] + "/*.json")):
    r = json.load(open(f))
    name = f.split("/")[-1][:-5]
    print(f"{name:<18} {r['modules']:>7} {r['int_mismatches']:>5} {r['scale_mismatches']:>6} {r['dequant_mismatches']:>5} "
          f"{r['kept_mismatches']:>5} {r.get('hf_logits_rel_diff', r.get('hf_load_error', '?'))!s:>18.18} {r.get('hf_top1_agreement', '-')!s:>7}")
PY
exit $status
