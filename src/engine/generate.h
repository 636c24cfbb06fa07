// The generation loop, shaped like llama2.c's generate(): the prompt (with BOS) is fed, then each
// sampled token is fed back until the token budget, BOS (llama2.c's sequence delimiter) or EOS.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/llama-model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

namespace rtnq {

struct GenerateParams {
  std::string prompt;
  int64_t max_new_tokens = 256;
  SamplerParams sampler;
  bool stop_at_eos = true;
  bool echo_prompt = true;  // print the prompt's pieces first, as llama2.c does
};

struct GenerateStats {
  int64_t prompt_tokens = 0;     // including BOS
  int64_t generated_tokens = 0;  // sampled tokens
  double prefill_seconds = 0.0;  // prompt forward + first sample
  double decode_seconds = 0.0;   // every later step
  // Tokens per second of the decode phase (tokens after the first / time).
  double decode_tokens_per_second() const {
    return decode_seconds > 0 && generated_tokens > 1 ? double(generated_tokens - 1) / decode_seconds : 0.0;
  }
};

// llama2.c's safe_printf rule: a piece that is a single byte which is neither printable nor
// whitespace (a stray byte-fallback token) is not printed.
bool is_printable_piece(const std::string& piece);

// Streams each printable piece to on_piece as soon as it is known.
Expected<GenerateStats> generate(LlamaModel& model, const Tokenizer& tokenizer, const GenerateParams& params,
                                 const std::function<void(const std::string&)>& on_piece);

}  // namespace rtnq
