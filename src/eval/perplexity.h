// Token-level perplexity over non-overlapping windows, in the two conventions papers and tools use,
// and the KL divergence of a model's next-token distribution from a base model's on the same text.
//   kFull:       windows of ctx tokens cut from the tokenized text; inside each, every token after
//                the first is predicted and scored (GPTQ / RTN papers, HF-style evaluation).
//   kSecondHalf: llama.cpp's `perplexity`: chunk i is tokens [i*ctx, (i+1)*ctx) with its first token
//                replaced by BOS (where the tokenizer adds one); only the second half is scored.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/llama-model.h"
#include "rtnq/status.h"

namespace rtnq {

enum class PerplexityMode { kFull, kSecondHalf };
std::string_view perplexity_mode_name(PerplexityMode m);  // "full", "second-half"

struct PerplexityParams {
  int64_t ctx = 512;
  PerplexityMode mode = PerplexityMode::kFull;
  int64_t limit_chunks = 0;  // 0: every whole window of the text
  int32_t bos_id = -1;       // second-half: the token that replaces each chunk's first (-1: none)
};

struct PerplexityProgress {
  int64_t chunk = 0, chunks = 0, tokens_scored = 0;
  double ppl = 0.0, seconds = 0.0;
};

struct PerplexityResult {
  PerplexityMode mode = PerplexityMode::kFull;
  int64_t ctx = 0, chunks = 0, tokens_scored = 0, text_tokens = 0;
  double mean_nll = 0.0;
  double ppl = 0.0;
  double ppl_stderr = 0.0;  // delta method: ppl * sd(nll) / sqrt(n)
  double seconds = 0.0;
  // With a base model.
  bool has_kl = false;
  double kl_mean = 0.0, kl_stderr = 0.0, kl_p99 = 0.0, kl_max = 0.0;
  double top1_agreement = 0.0;  // fraction of scored positions whose argmax agrees with the base's
  double base_ppl = 0.0;
};

// Scores `tokens` (the whole tokenized text) with `model`, and with `base` too when given (same
// vocabulary required). on_progress is called after every chunk.
Expected<PerplexityResult> evaluate_perplexity(LlamaModel& model, const std::vector<int32_t>& tokens,
                                               const PerplexityParams& params, LlamaModel* base = nullptr,
                                               const std::function<void(const PerplexityProgress&)>& on_progress = {});

}  // namespace rtnq
