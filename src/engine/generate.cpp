#include "engine/generate.h"

#include <cctype>
#include <chrono>
#include <vector>

#include <fmt/format.h>

namespace rtnq {

bool is_printable_piece(const std::string& piece) {
  if (piece.empty()) return false;
  if (piece.size() == 1) {
    const auto c = static_cast<unsigned char>(piece[0]);
    return std::isprint(c) || std::isspace(c);
  }
  return true;
}

Expected<GenerateStats> generate(LlamaModel& model, const Tokenizer& tokenizer, const GenerateParams& params,
                                 const std::function<void(const std::string&)>& on_piece) {
  using Clock = std::chrono::steady_clock;
  if (tokenizer.vocab_size() > model.vocab_size())
    return invalid_argument(fmt::format("the tokenizer has {} tokens but the model's vocabulary is {}",
                                        tokenizer.vocab_size(), model.vocab_size()));
  std::vector<int32_t> prompt = tokenizer.encode(params.prompt, /*add_bos=*/true);
  if (prompt.empty())
    return invalid_argument("the prompt is empty and this tokenizer adds no BOS token: give --prompt TEXT");
  GenerateStats stats;
  stats.prompt_tokens = int64_t(prompt.size());
  const int64_t ctx = model.spec().max_position_embeddings;
  if (stats.prompt_tokens >= ctx)
    return invalid_argument(fmt::format("the prompt is {} tokens; the model's context is {}", prompt.size(), ctx));
  const int64_t total = std::min<int64_t>(ctx, stats.prompt_tokens + params.max_new_tokens);
  KvCache cache = model.new_cache(total);
  Sampler sampler(params.sampler);
  std::vector<float> logits(static_cast<size_t>(model.vocab_size()));

  auto emit = [&](int32_t prev, int32_t tok) {
    const std::string piece = tokenizer.decode_token(prev, tok);
    if (is_printable_piece(piece)) on_piece(piece);
  };
  if (params.echo_prompt)
    for (size_t i = 1; i < prompt.size(); ++i) emit(prompt[i - 1], prompt[i]);
  if (params.max_new_tokens <= 0) return stats;

  auto t0 = Clock::now();
  RTNQ_RETURN_IF_ERROR(model.forward(prompt, cache, logits.data()));
  int32_t token = prompt.back();
  for (;;) {
    const int32_t next = sampler.sample(logits.data(), model.vocab_size());
    ++stats.generated_tokens;
    const auto now = Clock::now();
    if (stats.generated_tokens == 1) {
      stats.prefill_seconds = std::chrono::duration<double>(now - t0).count();
      t0 = now;
    }
    if (next == tokenizer.bos_id()) break;  // llama2.c: BOS delimits sequences
    if (params.stop_at_eos && next == tokenizer.eos_id()) break;
    emit(token, next);
    token = next;
    if (stats.generated_tokens >= params.max_new_tokens || cache.size() >= total) break;
    const int32_t one[1] = {token};
    RTNQ_RETURN_IF_ERROR(model.forward(one, cache, logits.data()));
  }
  stats.decode_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return stats;
}

}  // namespace rtnq
