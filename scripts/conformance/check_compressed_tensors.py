"""Independent conformance check of an rtnq checkpoint against compressed-tensors and transformers.

For every linear the checkpoint's quantization_config quantizes, the ORIGINAL weight is quantized by
compressed-tensors' own code (calculate_qparams + quantize), and compared with what compressed-tensors
unpacks from our checkpoint (unpack_from_int32): integers and scales must be identical, and the
dequantized weights must match compressed-tensors' dequantize exactly. Unquantized tensors must be
byte-identical. Then transformers loads the quantized folder (through its compressed-tensors
integration) and its logits are compared with the original model whose weights were replaced by the
dequantized ones.

usage: python check_compressed_tensors.py ORIGINAL_DIR QUANTIZED_DIR [--json OUT]
"""
import argparse
import glob
import json
import os
import re

import torch
from safetensors import safe_open

from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
from compressed_tensors.quantization import QuantizationArgs
from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
from compressed_tensors.quantization.utils.helpers import calculate_qparams


def load_tensors(folder):
    out = {}
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with safe_open(f, "pt") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out


def scheme_for(cfg, name):
    for ig in cfg.get("ignore", []):
        if (ig.startswith("re:") and re.match(ig[3:], name)) or ig == name:
            return None
    hits = []
    for gname, g in cfg["config_groups"].items():
        for t in g["targets"]:
            if (t.startswith("re:") and re.match(t[3:], name)) or t == name:
                hits.append(g["weights"])
    assert len(hits) <= 1, f"{name} matched {len(hits)} groups"
    return hits[0] if hits else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("original")
    ap.add_argument("quantized")
    ap.add_argument("--json")
    a = ap.parse_args()

    cfg = json.load(open(os.path.join(a.quantized, "config.json")))["quantization_config"]
    orig = load_tensors(a.original)
    quant = load_tensors(a.quantized)
    result = {"original": a.original, "quantized": a.quantized, "modules": 0, "int_mismatches": 0,
              "scale_mismatches": 0, "dequant_mismatches": 0, "kept_mismatches": 0, "kept": 0}
    deq_weights = {}
    for name, w in orig.items():
        if not name.endswith(".weight"):
            assert torch.equal(quant[name], w), f"{name} changed"
            result["kept"] += 1
            continue
        prefix = name[: -len(".weight")]
        args_d = scheme_for(cfg, prefix) if "_proj" in prefix or prefix == "lm_head" else None
        if args_d is None:
            if not torch.equal(quant[name], w):
                result["kept_mismatches"] += 1
            result["kept"] += 1
            continue
        args = QuantizationArgs(num_bits=args_d["num_bits"], type="int", symmetric=True,
                                strategy=args_d["strategy"], group_size=args_d.get("group_size"))
        rows, cols = w.shape
        g = cols if args_d["strategy"] == "channel" else args_d["group_size"]
        wg = w.reshape(rows, cols // g, g)
        scale, zp = calculate_qparams(wg.amin(-1), wg.amax(-1), args)
        if args_d["strategy"] == "channel":
            scale, zp = scale.reshape(rows, 1), zp.reshape(rows, 1)
        q_ref = quantize(w, scale, zp, args, dtype=torch.int8)
        shape = quant[prefix + ".weight_shape"].tolist()
        assert shape == [rows, cols], (prefix, shape)
        q_ours = unpack_from_int32(quant[prefix + ".weight_packed"], args_d["num_bits"], torch.Size(shape))
        s_ours = quant[prefix + ".weight_scale"]
        assert s_ours.dtype == w.dtype, (prefix, s_ours.dtype, w.dtype)
        result["modules"] += 1
        result["int_mismatches"] += int((q_ours.to(torch.int32) != q_ref.to(torch.int32)).sum())
        result["scale_mismatches"] += int((s_ours.reshape(scale.shape) != scale).sum())
        d_ref = dequantize(q_ref, scale, zp, args, dtype=w.dtype)
        d_ours = dequantize(q_ours, s_ours.reshape(scale.shape), None, args, dtype=w.dtype)
        result["dequant_mismatches"] += int((d_ref != d_ours).sum())
        deq_weights[name] = d_ours

    # transformers: load the quantized folder and compare logits with a fake-quantized original.
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 500, (1, 48), generator=torch.Generator().manual_seed(7))
    base = AutoModelForCausalLM.from_pretrained(a.original, torch_dtype=torch.float32)
    sd = base.state_dict()
    for k, v in deq_weights.items():
        sd[k] = v.to(torch.float32)
    base.load_state_dict(sd)
    try:
        qm = AutoModelForCausalLM.from_pretrained(a.quantized, torch_dtype=torch.float32)
        with torch.no_grad():
            l_ref = base(ids).logits
            l_q = qm(ids.to(qm.device)).logits.to(torch.float32).cpu()
        result["hf_logits_max_abs_diff"] = float((l_ref - l_q).abs().max())
        result["hf_logits_rel_diff"] = float((l_ref - l_q).norm() / l_ref.norm())
        result["hf_top1_agreement"] = float((l_ref.argmax(-1) == l_q.argmax(-1)).float().mean())
    except Exception as e:  # report, do not hide
        result["hf_load_error"] = repr(e)[:500]

    print(json.dumps(result, indent=1))
    if a.json:
        json.dump(result, open(a.json, "w"), indent=1)
    ok = (result["int_mismatches"] == 0 and result["scale_mismatches"] == 0 and result["dequant_mismatches"] == 0
          and result["kept_mismatches"] == 0 and result["modules"] > 0)
    print("CONFORMANCE", "PASS" if ok else "FAIL", a.quantized)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
