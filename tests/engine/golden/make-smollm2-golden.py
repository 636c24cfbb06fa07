#!/usr/bin/env python3
"""Golden logits for SmolLM2-135M-Instruct.Q4_1.gguf from an independent implementation.

Independent of rtnq's C++ code path: the GGUF is read and its blocks dequantized by the `gguf`
package (llama.cpp's gguf-py), and the forward pass below works on the GGUF layout directly, with
RoPE on interleaved pairs (2i, 2i+1) as llama.cpp applies it to GGUF q/k weights, whereas rtnq
un-permutes the rows to Hugging Face's half-split layout. Everything is float64.

Writes a small JSON fixture: for a few fixed token sequences, the top-k logits at every position.
usage: make-smollm2-golden.py MODEL.gguf OUT.json     (needs: pip install numpy gguf)
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

TOP_K = 8
# Token ids, not text: the tokenizer is tested on its own. The first is "The capital of France is"
# in SmolLM2's vocabulary; the others are arbitrary ids spread over the vocabulary.
SEQUENCES = [
    [504, 3575, 282, 4649, 314],
    [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712],
    [48000, 17, 301, 12345, 2, 777, 40000, 88, 9999, 4],
]


def field(r, key):
    f = r.fields[key]
    v = f.parts[f.data[0]]
    return v[0] if len(v) == 1 else v


def main():
    path, out = sys.argv[1], sys.argv[2]
    r = GGUFReader(path)
    d = int(field(r, "llama.embedding_length"))
    n_layers = int(field(r, "llama.block_count"))
    n_heads = int(field(r, "llama.attention.head_count"))
    n_kv = int(field(r, "llama.attention.head_count_kv"))
    theta = float(field(r, "llama.rope.freq_base"))
    eps = float(field(r, "llama.attention.layer_norm_rms_epsilon"))
    hd = d // n_heads
    W = {}
    for t in r.tensors:
        W[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape([int(x) for x in reversed(t.shape)])
    emb = W["token_embd.weight"]
    out_w = W.get("output.weight", emb)

    def rmsnorm(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)

    def rope(x, n):  # x: [T, n*hd], interleaved pairs
        T = x.shape[0]
        x = x.reshape(T, n, hd // 2, 2)
        ang = np.arange(T)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., 0], x[..., 1]
        return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(T, n * hd)

    result = []
    for ids in SEQUENCES:
        x = emb[ids]
        T = len(ids)
        for l in range(n_layers):
            p = f"blk.{l}."
            h = rmsnorm(x, W[p + "attn_norm.weight"])
            q = rope(h @ W[p + "attn_q.weight"].T, n_heads).reshape(T, n_heads, hd)
            k = rope(h @ W[p + "attn_k.weight"].T, n_kv).reshape(T, n_kv, hd)
            v = (h @ W[p + "attn_v.weight"].T).reshape(T, n_kv, hd)
            att = np.zeros((T, n_heads, hd))
            for hh in range(n_heads):
                kv = hh // (n_heads // n_kv)
                s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd)
                s = s + np.triu(np.full((T, T), -np.inf), 1)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                att[:, hh, :] = s @ v[:, kv, :]
            x = x + att.reshape(T, d) @ W[p + "attn_output.weight"].T
            h = rmsnorm(x, W[p + "ffn_norm.weight"])
            g = h @ W[p + "ffn_gate.weight"].T
            u = h @ W[p + "ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "ffn_down.weight"].T
        logits = rmsnorm(x, W["output_norm.weight"]) @ out_w.T
        positions = []
        for t in range(T):
            top = np.argsort(-logits[t])[:TOP_K]
            positions.append({"ids": [int(i) for i in top], "logits": [float(logits[t, i]) for i in top],
                              "max_abs": float(np.abs(logits[t]).max())})
        result.append({"tokens": ids, "positions": positions})
    with open(out, "w") as f:
        json.dump({"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "top_k": TOP_K, "sequences": result}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
