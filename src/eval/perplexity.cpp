#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

namespace rtnq {
namespace {

// log-softmax of one row in double: the per-token losses are sums of many small terms.
void log_softmax(const float* logits, int64_t n, std::vector<double>& out) {
  out.resize(size_t(n));
  double mx = -1e300;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(logits[i]) - lse;
}

int64_t argmax_row(const float* x, int64_t n) {
  return int64_t(std::max_element(x, x + n) - x);
}

}  // namespace

std::string_view perplexity_mode_name(PerplexityMode m) {
  return m == PerplexityMode::kFull ? "full" : "second-half";
}

Expected<PerplexityResult> evaluate_perplexity(LlamaModel& model, const std::vector<int32_t>& tokens,
                                               const PerplexityParams& params, LlamaModel* base,
                                               const std::function<void(const PerplexityProgress&)>& on_progress) {
  using Clock = std::chrono::steady_clock;
  const int64_t ctx = params.ctx, V = model.vocab_size();
  if (ctx < 4) return invalid_argument(fmt::format("--ctx {} is too small (at least 4)", ctx));
  if (ctx > model.spec().max_position_embeddings)
    return invalid_argument(fmt::format("--ctx {} exceeds the model's context of {}", ctx,
                                        model.spec().max_position_embeddings));
  if (base && base->vocab_size() != V)
    return invalid_argument(fmt::format("--kl-base has a vocabulary of {}, the model {}", base->vocab_size(), V));
  int64_t chunks = int64_t(tokens.size()) / ctx;
  if (chunks == 0)
    return invalid_argument(fmt::format("the text is {} tokens, shorter than one window of --ctx {}", tokens.size(), ctx));
  if (params.limit_chunks > 0) chunks = std::min(chunks, params.limit_chunks);

  PerplexityResult r;
  r.mode = params.mode;
  r.ctx = ctx;
  r.chunks = chunks;
  r.text_tokens = int64_t(tokens.size());
  r.has_kl = base != nullptr;
  // Scored positions: full predicts tokens 1..ctx-1 from positions 0..ctx-2; second-half predicts
  // tokens first+1..ctx-1 from positions first..ctx-2 with first = ctx/2, as llama.cpp does.
  const int64_t first = params.mode == PerplexityMode::kFull ? 0 : ctx / 2;

  std::vector<float> logits(static_cast<size_t>(ctx * V)), base_logits;
  if (base) base_logits.resize(logits.size());
  std::vector<double> lp, blp, kls;
  double sum = 0.0, sum_sq = 0.0, base_sum = 0.0, kl_sum = 0.0, kl_sq = 0.0;
  int64_t n = 0, agree = 0;
  KvCache cache = model.new_cache(ctx);
  KvCache base_cache;
  if (base) base_cache = base->new_cache(ctx);
  const auto t0 = Clock::now();
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> window(tokens.begin() + c * ctx, tokens.begin() + (c + 1) * ctx);
    if (params.mode == PerplexityMode::kSecondHalf && params.bos_id >= 0) window[0] = params.bos_id;
    cache.clear();
    RTNQ_RETURN_IF_ERROR(model.forward(window, cache, logits.data(), /*all_logits=*/true));
    if (base) {
      base_cache.clear();
      RTNQ_RETURN_IF_ERROR(base->forward(window, base_cache, base_logits.data(), true));
    }
    for (int64_t p = first; p < ctx - 1; ++p) {
      const float* row = &logits[size_t(p * V)];
      log_softmax(row, V, lp);
      const double nll = -lp[size_t(window[size_t(p + 1)])];
      sum += nll;
      sum_sq += nll * nll;
      ++n;
      if (base) {
        const float* brow = &base_logits[size_t(p * V)];
        log_softmax(brow, V, blp);
        base_sum += -blp[size_t(window[size_t(p + 1)])];
        double kl = 0.0;
        for (int64_t v = 0; v < V; ++v) kl += std::exp(blp[size_t(v)]) * (blp[size_t(v)] - lp[size_t(v)]);
        kl = std::max(0.0, kl);  // rounding can leave -1e-17 where the distributions agree
        kls.push_back(kl);
        kl_sum += kl;
        kl_sq += kl * kl;
        agree += argmax_row(row, V) == argmax_row(brow, V);
      }
    }
    if (on_progress) {
      PerplexityProgress pr;
      pr.chunk = c + 1;
      pr.chunks = chunks;
      pr.tokens_scored = n;
      pr.ppl = std::exp(sum / double(n));
      pr.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      on_progress(pr);
    }
  }
  r.tokens_scored = n;
  r.mean_nll = sum / double(n);
  r.ppl = std::exp(r.mean_nll);
  const double var = n > 1 ? std::max(0.0, (sum_sq - sum * sum / double(n)) / double(n - 1)) : 0.0;
  r.ppl_stderr = r.ppl * std::sqrt(var / double(n));
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (base) {
    r.base_ppl = std::exp(base_sum / double(n));
    r.kl_mean = kl_sum / double(n);
    const double kvar = n > 1 ? std::max(0.0, (kl_sq - kl_sum * kl_sum / double(n)) / double(n - 1)) : 0.0;
    r.kl_stderr = std::sqrt(kvar / double(n));
    std::sort(kls.begin(), kls.end());
    r.kl_p99 = kls[std::min(kls.size() - 1, size_t(std::ceil(0.99 * double(kls.size()))) - 1)];
    r.kl_max = kls.back();
    r.top1_agreement = double(agree) / double(n);
  }
  return r;
}

}  // namespace rtnq
