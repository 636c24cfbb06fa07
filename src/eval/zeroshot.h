// Zero-shot multiple-choice accuracy with lm-evaluation-harness semantics (its HFLM loglikelihood):
//   - a trailing whitespace run of the context moves to the front of the continuation;
//   - whole = encode(context + continuation), ctx = encode(context); the continuation's tokens are
//     whole[len(ctx):], scored after ctx (so the model sees ctx + whole[len(ctx):]);
//   - BOS in front where the tokenizer adds one by default; an empty context is replaced by BOS
//     (or EOS), the harness's prefix token;
//   - a choice's score is the sum of its continuation tokens' log-probabilities; it is "greedy" when
//     each of those tokens is also the argmax at its position;
//   - acc: argmax of the sums equals gold; acc_norm: argmax of sum / len(choice text in code points);
//     ties go to the first choice (numpy argmax);
//   - stderr of a mean of 0/1 values: sample sd / sqrt(n) = sqrt(p (1 - p) / (n - 1)).
// The context of an item is run once; each choice then continues from its KV cache entries (the
// cache is cut back to the context length between choices).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "eval/task-file.h"
#include "rtnq/status.h"

namespace rtnq {

// The harness's request split: tokens of the context (with BOS) and of the continuation.
struct EncodedRequest {
  std::vector<int32_t> context;
  std::vector<int32_t> continuation;
};
EncodedRequest encode_request(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                              bool add_bos);

struct ZeroShotParams {
  int64_t limit = 0;  // score only the first N items (0: all)
  int64_t batch = 1;  // items per progress step (scoring itself runs one sequence at a time)
  // BOS as the tokenizer adds it by default (true), or never (false).
  bool use_tokenizer_bos = true;
  // Left-truncation length (the harness's max_length); 0: the model's max_position_embeddings.
  int64_t max_length = 0;
};

struct ChoiceScore {
  double loglik = 0.0;
  bool greedy = false;
  int64_t context_tokens = 0, continuation_tokens = 0;
};

struct ItemScore {
  std::vector<ChoiceScore> choices;
  int64_t gold = 0, pred = 0, pred_norm = 0;
};

struct TaskResult {
  std::string name;
  std::string file;
  TaskFormat format = TaskFormat::kMultipleChoice;
  int64_t n = 0, total_items = 0;  // scored / in the file
  double acc = 0.0, acc_stderr = 0.0;
  bool has_acc_norm = false;
  double acc_norm = 0.0, acc_norm_stderr = 0.0;
  int64_t tokens_run = 0;  // tokens through the model (contexts once, continuations per choice)
  double seconds = 0.0;
  std::vector<ItemScore> items;
};

struct ZeroShotProgress {
  std::string task;
  int64_t done = 0, total = 0;
  double seconds = 0.0, eta_seconds = 0.0;
  double acc = 0.0;  // over the items done so far
};

// Scores the first params.limit items of `task`; on_progress after every params.batch items.
Expected<TaskResult> evaluate_zeroshot(LlamaModel& model, const Tokenizer& tok, const Task& task,
                                       const ZeroShotParams& params,
                                       const std::function<void(const ZeroShotProgress&)>& on_progress = {});

// sqrt(p (1 - p) / (n - 1)): the harness's mean_stderr for 0/1 samples (0 when n < 2).
double binary_stderr(double p, int64_t n);

// | Task | Metric | Value | Stderr | n | markdown table, as the harness prints its summary.
std::string format_zeroshot_table(const std::vector<TaskResult>& results);
// {"model":..., "results": {task: {"acc":..,"acc_stderr":..,"acc_norm":..,"n":..}}, "per_item": optional}.
nlohmann::ordered_json zeroshot_results_to_json(const std::string& model, const std::vector<TaskResult>& results,
                                                bool per_item);

}  // namespace rtnq
