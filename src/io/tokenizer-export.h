// Writing a Hugging Face `tokenizers` tokenizer.json (and tokenizer_config.json) from the vocabulary a
// GGUF file or a llama2.c tok*.bin carries, so a quantized checkpoint loads with AutoTokenizer.
//
// Which sources convert:
//   kHfJson        the source's own tokenizer.json is returned as it is.
//   kGpt2Bpe       GGUF tokenizer.ggml.model "gpt2": byte-level BPE with the GGUF merges; the
//                  pre-tokenizer follows tokenizer.ggml.pre ("gpt2", "smollm", "llama-bpe", "qwen2";
//                  other values fall back to GPT-2's regex).
//   kSentencePiece GGUF "llama" and llama2.c tok*.bin: the Llama fast tokenizer as transformers'
//                  LlamaConverter builds it (legacy style: Prepend + Replace normalizer, byte fallback),
//                  merges derived from the piece scores.
//   kNone          nothing to write: an error.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "rtnq/model.h"

namespace rtnq {

Expected<nlohmann::json> tokenizer_json_from(const TokenizerData& tok);

// tokenizer_config.json: special tokens, add_bos/add_eos, chat template, tokenizer class, and
// model_max_length (omitted when <= 0).
nlohmann::json tokenizer_config_from(const TokenizerData& tok, int64_t model_max_length = 0);

// BPE merges implied by a SentencePiece BPE vocabulary, as transformers' generate_merges derives them:
// every way of writing a piece as the concatenation of two vocabulary pieces (split at code-point
// boundaries; splits of one piece ordered by (left id, right id)), then all merges stably sorted by
// the merged piece's score, high first, ties broken by longer left then longer right piece (in code
// points). Applying them lowest rank first reproduces SentencePiece's / llama2.c's score-greedy merging.
std::vector<std::pair<std::string, std::string>> sentencepiece_merges(const std::vector<std::string>& tokens,
                                                                      const std::vector<float>& scores);

// The pre-tokenizer split regex a GGUF `tokenizer.ggml.pre` value stands for, as in the original
// tokenizer.json ("" when the value is unknown).
std::string gguf_pre_regex(const std::string& pre);

}  // namespace rtnq
