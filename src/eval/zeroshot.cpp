#include "eval/zeroshot.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <span>

#include <fmt/format.h>

#include "core/check.h"

namespace rtnq {
namespace {

bool is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// log p(token) under one row of logits, in double (sums over many tokens are compared at 1e-4),
// and whether the token is the row's argmax (first maximum, as torch/numpy pick it).
void score_row(const float* row, int64_t vocab, int32_t token, double* logp, bool* is_argmax) {
  const float* best = std::max_element(row, row + vocab);
  double sum = 0.0;
  const double mx = double(*best);
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i]) - mx);
  *logp = double(row[token]) - (mx + std::log(sum));
  *is_argmax = (best - row) == token;
}

int64_t first_argmax(const std::vector<double>& v) {
  return int64_t(std::max_element(v.begin(), v.end()) - v.begin());
}

struct PreparedChoice {
  EncodedRequest req;
  size_t group = 0;  // index of its shared context within the item
};

}  // namespace

EncodedRequest encode_request(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                              bool add_bos) {
  // The harness's _encode_pair: trailing whitespace of the context belongs to the continuation, so
  // " Paris" is tokenized as the model would have seen it after "Answer:".
  size_t keep = context.size();
  while (keep > 0 && is_py_space(context[keep - 1])) --keep;
  const std::string ctx = context.substr(0, keep);
  const std::string cont = context.substr(keep) + continuation;
  const bool bos = add_bos && tok.bos_id() >= 0;
  EncodedRequest r;
  if (ctx.empty()) {
    // The harness scores a context-free continuation after its prefix token (BOS, else EOS).
    const int32_t prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
    if (prefix >= 0) r.context.push_back(prefix);
    r.continuation = tok.encode(cont, /*add_bos=*/false, /*parse_special=*/true);
    return r;
  }
  const std::vector<int32_t> whole = tok.encode(ctx + cont, bos, /*parse_special=*/true);
  r.context = tok.encode(ctx, bos, /*parse_special=*/true);
  if (whole.size() > r.context.size()) r.continuation.assign(whole.begin() + std::ptrdiff_t(r.context.size()), whole.end());
  return r;
}

double binary_stderr(double p, int64_t n) {
  if (n < 2) return 0.0;
  return std::sqrt(std::max(0.0, p * (1.0 - p)) / double(n - 1));
}

Expected<TaskResult> evaluate_zeroshot(LlamaModel& model, const Tokenizer& tok, const Task& task,
                                       const ZeroShotParams& params,
                                       const std::function<void(const ZeroShotProgress&)>& on_progress) {
  using Clock = std::chrono::steady_clock;
  if (params.limit < 0) return invalid_argument(fmt::format("--limit {} must be >= 0", params.limit));
  if (params.batch < 1) return invalid_argument(fmt::format("--batch {} must be >= 1", params.batch));
  const int64_t V = model.vocab_size();
  if (tok.vocab_size() > V)
    return invalid_argument(fmt::format("the tokenizer has {} tokens, the model's vocabulary only {}", tok.vocab_size(), V));
  const int64_t max_len = params.max_length > 0 ? params.max_length : model.spec().max_position_embeddings;
  const int64_t total = int64_t(task.items.size());
  const int64_t n = params.limit > 0 ? std::min(params.limit, total) : total;
  const bool add_bos = params.use_tokenizer_bos && tok.add_bos_default();

  // Tokenize everything first: the cache is then sized once for the longest sequence.
  std::vector<std::vector<PreparedChoice>> prepared(static_cast<size_t>(n));
  std::vector<std::vector<std::vector<int32_t>>> contexts(static_cast<size_t>(n));  // distinct contexts per item
  int64_t longest = 1, longest_cont = 1;
  for (int64_t i = 0; i < n; ++i) {
    const TaskItem& item = task.items[size_t(i)];
    auto& choices = prepared[size_t(i)];
    auto& ctxs = contexts[size_t(i)];
    for (size_t k = 0; k < item.choices.size(); ++k) {
      PreparedChoice pc;
      pc.req = encode_request(tok, item.choices[k].context, item.choices[k].continuation, add_bos);
      if (pc.req.continuation.empty())
        return invalid_argument(fmt::format("{}:{}: choice {} has an empty continuation after tokenization",
                                            task.file.string(), item.line, k));
      if (pc.req.context.empty())
        return invalid_argument(fmt::format("{}:{}: choice {} has an empty context and the tokenizer no BOS/EOS",
                                            task.file.string(), item.line, k));
      if (int64_t(pc.req.continuation.size()) > max_len)
        return invalid_argument(fmt::format("{}:{}: choice {} is {} tokens, longer than the context of {}",
                                            task.file.string(), item.line, k, pc.req.continuation.size(), max_len));
      const auto it = std::find(ctxs.begin(), ctxs.end(), pc.req.context);
      pc.group = size_t(it - ctxs.begin());
      if (it == ctxs.end()) ctxs.push_back(pc.req.context);
      const int64_t len = int64_t(pc.req.context.size() + pc.req.continuation.size()) - 1;
      longest = std::max(longest, std::min(len, max_len));
      longest_cont = std::max(longest_cont, int64_t(pc.req.continuation.size()));
      choices.push_back(std::move(pc));
    }
  }

  TaskResult r;
  r.name = task.name;
  r.file = task.file.string();
  r.format = task.format;
  r.total_items = total;
  r.has_acc_norm = task.has_acc_norm;
  KvCache cache = model.new_cache(longest);
  std::vector<float> last(static_cast<size_t>(V)), rows(static_cast<size_t>(std::max(longest, longest_cont) * V));
  int64_t correct = 0, correct_norm = 0;
  const auto t0 = Clock::now();

  // Continuation tokens scored from `first_row` (the distribution over cont[0]) and, for the rest,
  // the rows of `rest` (row j predicts cont[j + 1]).
  auto sum_continuation = [&](const std::vector<int32_t>& cont, const float* first_row, const float* rest,
                              ChoiceScore& s) {
    double total_lp = 0.0;
    bool greedy = true;
    for (size_t j = 0; j < cont.size(); ++j) {
      const float* row = j == 0 ? first_row : rest + (j - 1) * size_t(V);
      double lp;
      bool top;
      score_row(row, V, cont[j], &lp, &top);
      total_lp += lp;
      greedy = greedy && top;
    }
    s.loglik = total_lp;
    s.greedy = greedy;
  };

  for (int64_t i = 0; i < n; ++i) {
    const TaskItem& item = task.items[size_t(i)];
    ItemScore is;
    is.gold = item.gold;
    is.choices.resize(item.choices.size());
    const auto& choices = prepared[size_t(i)];
    const auto& ctxs = contexts[size_t(i)];
    for (size_t g = 0; g < ctxs.size(); ++g) {
      const std::vector<int32_t>& ctx = ctxs[g];
      bool ctx_ran = false;
      for (size_t k = 0; k < choices.size(); ++k) {
        if (choices[k].group != g) continue;
        const std::vector<int32_t>& cont = choices[k].req.continuation;
        ChoiceScore& s = is.choices[k];
        s.context_tokens = int64_t(ctx.size());
        s.continuation_tokens = int64_t(cont.size());
        const int64_t len = int64_t(ctx.size() + cont.size()) - 1;
        if (len > max_len) {
          // Too long: the harness keeps the last max_len + 1 tokens and drops the final one, so the
          // context loses its start; this choice runs on its own.
          std::vector<int32_t> full(ctx);
          full.insert(full.end(), cont.begin(), cont.end());
          const std::vector<int32_t> inp(full.end() - (max_len + 1), full.end() - 1);
          cache.clear();
          RTNQ_RETURN_IF_ERROR(model.forward(inp, cache, rows.data(), /*all_logits=*/true));
          r.tokens_run += int64_t(inp.size());
          const float* first = rows.data() + size_t(int64_t(inp.size()) - int64_t(cont.size())) * size_t(V);
          sum_continuation(cont, first, first + V, s);
          ctx_ran = false;  // the cache no longer holds the shared context
          continue;
        }
        if (!ctx_ran) {
          cache.clear();
          RTNQ_RETURN_IF_ERROR(model.forward(ctx, cache, last.data(), /*all_logits=*/false));
          r.tokens_run += int64_t(ctx.size());
          ctx_ran = true;
        }
        if (cont.size() > 1) {
          // Forget the previous choice's entries: the next positions are written over.
          cache.set_size(int64_t(ctx.size()));
          const std::span<const int32_t> head(cont.data(), cont.size() - 1);
          RTNQ_RETURN_IF_ERROR(model.forward(head, cache, rows.data(), /*all_logits=*/true));
          r.tokens_run += int64_t(head.size());
        }
        sum_continuation(cont, last.data(), rows.data(), s);
      }
    }
    std::vector<double> ll, ll_norm;
    for (size_t k = 0; k < is.choices.size(); ++k) {
      ll.push_back(is.choices[k].loglik);
      const int64_t chars = item.choices[k].norm_chars;
      // numpy's x / 0: -inf for a log-likelihood below zero, so an empty choice never wins.
      ll_norm.push_back(chars > 0 ? is.choices[k].loglik / double(chars)
                                  : -std::numeric_limits<double>::infinity());
    }
    is.pred = first_argmax(ll);
    is.pred_norm = first_argmax(ll_norm);
    correct += is.pred == is.gold;
    correct_norm += is.pred_norm == is.gold;
    r.items.push_back(std::move(is));
    const int64_t done = i + 1;
    if (on_progress && (done % params.batch == 0 || done == n)) {
      ZeroShotProgress p;
      p.task = task.name;
      p.done = done;
      p.total = n;
      p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      p.eta_seconds = p.seconds / double(done) * double(n - done);
      p.acc = double(correct) / double(done);
      on_progress(p);
    }
  }
  r.n = n;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (n > 0) {
    r.acc = double(correct) / double(n);
    r.acc_norm = double(correct_norm) / double(n);
  }
  r.acc_stderr = binary_stderr(r.acc, n);
  r.acc_norm_stderr = binary_stderr(r.acc_norm, n);
  return r;
}

}  // namespace rtnq
