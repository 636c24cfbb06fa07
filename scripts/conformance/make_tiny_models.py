"""Write small random Hugging Face checkpoints with transformers itself (an independent writer of
the format rtnq reads): a Llama in bfloat16 and a Qwen2 (q/k/v biases) in float16.

usage: python make_tiny_models.py OUT_DIR
"""
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

out = sys.argv[1]
torch.manual_seed(1234)

llama = LlamaConfig(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8,
                    num_key_value_heads=2, vocab_size=512, max_position_embeddings=256, tie_word_embeddings=False,
                    rope_theta=500000.0)
m = LlamaForCausalLM(llama).to(torch.bfloat16)
m.save_pretrained(f"{out}/tiny-llama-bf16", safe_serialization=True)

qwen = Qwen2Config(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=512, max_position_embeddings=256, tie_word_embeddings=True)
m = Qwen2ForCausalLM(qwen).to(torch.float16)
m.save_pretrained(f"{out}/tiny-qwen2-fp16", safe_serialization=True)
print("wrote", out)
