#!/usr/bin/env python3
"""Golden per-choice log-likelihoods for `rtnq eval`, computed by Hugging Face transformers.

Loads a GGUF model (default: SmolLM2-135M-Instruct Q4_1) in float32 with transformers (which reads
GGUF through the `gguf` package), builds the zero-shot requests for the first N items of each task
exactly as lm-evaluation-harness does (and as src/eval/task-file.cpp does from the same files), and
writes every choice's summed continuation log-probability, whether it is greedy, and its token
counts to a small JSON fixture read by tests/eval/zeroshot-golden-test.cpp.

Needs only torch, transformers, gguf and numpy; no network.

    python3 scripts/golden/eval_loglik.py tests/fixtures/smollm2-zeroshot-loglik.json \
        [--model models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf] \
        [--data-dir ../shared/data/zeroshot] [--limit 50] [--device cuda]
"""
import argparse
import bz2
import json
import os
import re
import sys
import time

import numpy as np
import torch

TASKS = [
    # name, file, how the harness turns the file's query into its context
    ("arc_easy", "arc_easy.jsonl", "arc"),
    ("arc_challenge", "arc_challenge.jsonl", "arc"),
    ("piqa", "piqa.jsonl", "piqa"),
    ("winogrande", "winogrande.jsonl", "partial"),
    ("hellaswag", "hellaswag_val_full.txt.bz2", "hellaswag"),
]


def hellaswag_preprocess(text):
    # lm-evaluation-harness tasks/hellaswag/utils.py preprocess()
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def read_lines(path):
    raw = open(path, "rb").read()
    if path.endswith(".bz2"):
        raw = bz2.decompress(raw)
    text = raw.decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [l[:-1] if l.endswith("\r") else l for l in lines]


def build_items(path, style, limit):
    """[(line, gold, [(context, continuation), ...])] for the first `limit` items."""
    items = []
    lines = read_lines(path)
    if style == "hellaswag":
        while lines and lines[-1] == "":
            lines.pop()
        for t in range(0, len(lines) - len(lines) % 6, 6):
            ctx = hellaswag_preprocess(lines[t])
            gold = int(lines[t + 1].strip())
            reqs = [(ctx, " " + hellaswag_preprocess(e)) for e in lines[t + 2:t + 6]]
            items.append((t + 1, gold, reqs))
            if len(items) == limit:
                break
        return items
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        doc = json.loads(line)
        if style == "partial":
            # winogrande (partial scoring): each option's context, then " " + the rest of the sentence
            reqs = [(opt, " " + doc["continuation"]) for opt in doc["context_options"]]
        else:
            # arc: "Question: {q}\nAnswer:"; piqa: "Question: {goal}\nAnswer:" — the files stop before the cue
            ctx = doc["query"] + ("\nAnswer:" if style == "arc" else "Answer:")
            reqs = [(ctx, " " + c) for c in doc["choices"]]
        items.append((i + 1, int(doc["gold"]), reqs))
        if len(items) == limit:
            break
    return items


def gguf_metadata(path):
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def value(key):
        f = reader.fields.get(key)
        if f is None:
            return None
        v = f.parts[f.data[0]]
        if f.types and f.types[0].name == "STRING":
            return bytes(v).decode("utf-8")
        return v.tolist()[0] if hasattr(v, "tolist") else v

    names = {t.name for t in reader.tensors}
    return value, names


def load(model_path, device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(model_path))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    meta, tensor_names = gguf_metadata(model_path)
    if "output.weight" not in tensor_names and model.get_output_embeddings() is not None:
        # No separate classifier in the file: the embedding is tied, as llama.cpp and rtnq run it.
        emb = model.get_input_embeddings().weight
        if not torch.equal(model.get_output_embeddings().weight, emb):
            print("eval_loglik: tying lm_head to the token embedding (no output.weight in the GGUF)", file=sys.stderr)
            model.get_output_embeddings().weight = emb
    pre = meta("tokenizer.ggml.pre")
    if pre in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"):
        # The original tokenizer splits digits one by one before the byte-level regex (llama.cpp's
        # pre-tokenizer for these names does too); transformers' GGUF conversion drops that step.
        from tokenizers import pre_tokenizers

        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    kind = meta("tokenizer.ggml.model")
    add_bos = meta("tokenizer.ggml.add_bos_token")
    if add_bos is None:
        add_bos = kind == "llama"  # llama.cpp's default: SentencePiece vocabularies add BOS, BPE ones not
    bos_id = meta("tokenizer.ggml.bos_token_id")
    eos_id = meta("tokenizer.ggml.eos_token_id")
    model.to(device).eval()
    return model, tok, bool(add_bos), bos_id, eos_id, pre


def encode_pair(tok, context, continuation, add_bos, bos_id, eos_id):
    # lm-evaluation-harness HFLM._encode_pair, with BOS as the tokenizer adds it by default.
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    enc = lambda s: tok.encode(s, add_special_tokens=False)
    prefix = [bos_id] if add_bos and bos_id is not None else []
    if context == "":
        return [bos_id if bos_id is not None else eos_id], enc(continuation)
    whole = prefix + enc(context + continuation)
    ctx = prefix + enc(context)
    return ctx, whole[len(ctx):]


@torch.no_grad()
def score(model, ctx, cont, device):
    ids = torch.tensor([(ctx + cont)[:-1]], device=device)
    logits = model(ids).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)[len(ctx) - 1:]
    target = torch.tensor(cont, device=device)
    total = logp.gather(1, target[:, None]).sum().item()
    greedy = bool((logp.argmax(dim=-1) == target).all().item())
    return total, greedy


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="fixture to write (tests/fixtures/smollm2-zeroshot-loglik.json)")
    ap.add_argument("--model", default=os.path.join(root, "models", "SmolLM2-135M-Instruct",
                                                    "SmolLM2-135M-Instruct.Q4_1.gguf"))
    default_data = os.path.join(os.environ.get("RTNQ_SHARED", os.path.join(root, "..", "shared")), "data", "zeroshot")
    ap.add_argument("--data-dir", default=default_data)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--tasks", default=",".join(t[0] for t in TASKS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False  # true fp32 matmuls: the fixture is compared at 1e-3
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    model, tok, add_bos, bos_id, eos_id, pre = load(args.model, args.device)
    import transformers

    out = {
        "generator": "scripts/golden/eval_loglik.py",
        "model": os.path.basename(args.model),
        "dtype": "float32",
        "device": args.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "add_bos": add_bos,
        "tokenizer_pre": pre,
        "limit": args.limit,
        "tasks": {},
    }
    wanted = set(args.tasks.split(","))
    for name, file, style in TASKS:
        if name not in wanted:
            continue
        items = build_items(os.path.join(args.data_dir, file), style, args.limit)
        rows = []
        for line, gold, reqs in items:
            choices = []
            for context, continuation in reqs:
                ctx, cont = encode_pair(tok, context, continuation, add_bos, bos_id, eos_id)
                ll, greedy = score(model, ctx, cont, args.device)
                choices.append({"loglik": round(ll, 6), "greedy": greedy,
                                "context_tokens": len(ctx), "continuation_tokens": len(cont)})
            rows.append({"line": line, "gold": gold, "choices": choices})
        out["tasks"][name] = rows
        acc = np.mean([int(np.argmax([c["loglik"] for c in r["choices"]]) == r["gold"]) for r in rows])
        print(f"eval_loglik: {name}: {len(rows)} items, acc {acc:.4f}", file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        # One item per line keeps the committed fixture small and its diffs readable.
        f.write("{\n")
        head = [k for k in out if k != "tasks"]
        for k in head:
            f.write(f"  {json.dumps(k)}: {json.dumps(out[k])},\n")
        f.write('  "tasks": {\n')
        names = list(out["tasks"])
        for ti, n in enumerate(names):
            f.write(f"    {json.dumps(n)}: [\n")
            rows = out["tasks"][n]
            for ri, r in enumerate(rows):
                f.write("      " + json.dumps(r, separators=(",", ":")) + ("," if ri + 1 < len(rows) else "") + "\n")
            f.write("    ]" + ("," if ti + 1 < len(names) else "") + "\n")
        f.write("  }\n}\n")
    print(f"eval_loglik: wrote {args.out} in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
