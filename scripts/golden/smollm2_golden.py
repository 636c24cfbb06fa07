#!/usr/bin/env python3
"""Golden references for the CPU engine, computed by Hugging Face transformers (an independent
implementation) on SmolLM2-135M-Instruct as shipped in GGUF (transformers dequantizes it with the
`gguf` package to float32, as rtnq does).

Writes two small fixtures:
  tests/fixtures/smollm2-logits.json     per prompt: token ids, and at several positions the top-k
                                          logits (id, value) plus the logsumexp of the full row
  tests/fixtures/smollm2-tokenizer.json  encode(text) ids and decode(ids) for Unicode-heavy strings

    python3 scripts/golden/smollm2_golden.py OUT_DIR [--model PATH.gguf] [--device cuda]
"""
import argparse
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "In 1905, Albert Einstein published four papers that changed physics: the photoelectric effect,",
]

TOKENIZER_TEXTS = [
    "Hello world",
    " leading space and  double  spaces\tand tabs\n\nnew lines",
    "Zürich, naïve café, São Paulo, Ångström",
    "日本語のテキストと中文文本，还有한국어 텍스트",
    "emoji 🙂🚀👩‍👩‍👧 and symbols ∑∫√ ≤ ≥ ≠",
    "numbers 1234567 3.14159 -42 1,000,000 2026-11-27",
    "code: for (int i = 0; i < n; ++i) { x[i] += y[i]; } // done",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "I'm sure you've seen they'll do it, we'd say OK'D",
    "   ",
    "\u00a0non-breaking\u2009thin\u200bzero-width",
    "Ελληνικά και русский текст и עברית",
]

TOP_K = 10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    folder, name = os.path.split(os.path.abspath(a.model))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model = model.to(a.device).eval()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    prompts = []
    for p in PROMPTS:
        ids = tok(p, add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = model(torch.tensor([ids], device=a.device)).logits[0].double().cpu()
        positions = sorted({0, len(ids) // 2, len(ids) - 1})
        rows = []
        for pos in positions:
            row = logits[pos]
            top = torch.topk(row, TOP_K)
            rows.append({"position": pos, "top_ids": top.indices.tolist(), "top_logits": top.values.tolist(),
                         "logsumexp": float(torch.logsumexp(row, 0))})
        prompts.append({"text": p, "ids": ids, "rows": rows})
    json.dump({"model": name, "implementation": "transformers (float32, %s)" % a.device, "top_k": TOP_K,
               "prompts": prompts}, open(os.path.join(a.out_dir, "smollm2-logits.json"), "w"), indent=1)

    enc = []
    for t in TOKENIZER_TEXTS:
        ids = tok(t, add_special_tokens=False).input_ids
        enc.append({"text": t, "ids": ids, "decoded": tok.decode(ids)})
    json.dump({"model": name, "implementation": "transformers fast tokenizer converted from GGUF", "cases": enc},
              open(os.path.join(a.out_dir, "smollm2-tokenizer.json"), "w"), indent=1, ensure_ascii=False)
    print("wrote", a.out_dir)


if __name__ == "__main__":
    main()
