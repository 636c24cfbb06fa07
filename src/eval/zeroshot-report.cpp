// The zero-shot summary: a markdown table in the shape of lm-evaluation-harness's, and JSON.
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "eval/zeroshot.h"

namespace rtnq {

std::string format_zeroshot_table(const std::vector<TaskResult>& results) {
  struct Row {
    std::string task, metric, value, stderr_text, n;
  };
  std::vector<Row> rows;
  for (const TaskResult& r : results) {
    const std::string n = r.n < r.total_items ? fmt::format("{}/{}", r.n, r.total_items) : fmt::format("{}", r.n);
    rows.push_back({r.name, "acc", fmt::format("{:.4f}", r.acc), fmt::format("{:.4f}", r.acc_stderr), n});
    if (r.has_acc_norm)
      rows.push_back({"", "acc_norm", fmt::format("{:.4f}", r.acc_norm), fmt::format("{:.4f}", r.acc_norm_stderr), ""});
  }
  size_t w_task = 4, w_metric = 6, w_value = 5, w_stderr = 6, w_n = 1;
  for (const Row& r : rows) {
    w_task = std::max(w_task, r.task.size());
    w_metric = std::max(w_metric, r.metric.size());
    w_value = std::max(w_value, r.value.size());
    w_stderr = std::max(w_stderr, r.stderr_text.size());
    w_n = std::max(w_n, r.n.size());
  }
  std::string out;
  out += fmt::format("| {:<{}} | {:<{}} | {:>{}} |   | {:>{}} | {:>{}} |\n", "Task", w_task, "Metric", w_metric, "Value",
                     w_value, "Stderr", w_stderr, "n", w_n);
  out += fmt::format("|{:-<{}}|{:-<{}}|{:->{}}:|---|{:->{}}:|{:->{}}:|\n", "", w_task + 2, "", w_metric + 2, "",
                     w_value + 1, "", w_stderr + 1, "", w_n + 1);
  for (const Row& r : rows)
    out += fmt::format("| {:<{}} | {:<{}} | {:>{}} | ± | {:>{}} | {:>{}} |\n", r.task, w_task, r.metric, w_metric, r.value,
                       w_value, r.stderr_text, w_stderr, r.n, w_n);
  return out;
}

nlohmann::ordered_json zeroshot_results_to_json(const std::string& model, const std::vector<TaskResult>& results,
                                                bool per_item) {
  nlohmann::ordered_json j;
  j["model"] = model;
  j["scoring"] = "lm-evaluation-harness loglikelihood: sum of continuation token log-probs; acc_norm by characters";
  nlohmann::ordered_json res = nlohmann::ordered_json::object();
  for (const TaskResult& r : results) {
    nlohmann::ordered_json t;
    t["file"] = r.file;
    t["format"] = std::string(task_format_name(r.format));
    t["n"] = r.n;
    t["total_items"] = r.total_items;
    t["acc"] = r.acc;
    t["acc_stderr"] = r.acc_stderr;
    if (r.has_acc_norm) {
      t["acc_norm"] = r.acc_norm;
      t["acc_norm_stderr"] = r.acc_norm_stderr;
    }
    t["tokens_run"] = r.tokens_run;
    t["seconds"] = r.seconds;
    if (per_item) {
      nlohmann::ordered_json items = nlohmann::ordered_json::array();
      for (const ItemScore& it : r.items) {
        nlohmann::ordered_json ji;
        ji["gold"] = it.gold;
        ji["pred"] = it.pred;
        if (r.has_acc_norm) ji["pred_norm"] = it.pred_norm;
        nlohmann::ordered_json ch = nlohmann::ordered_json::array();
        for (const ChoiceScore& c : it.choices)
          ch.push_back({{"loglik", c.loglik},
                        {"greedy", c.greedy},
                        {"context_tokens", c.context_tokens},
                        {"continuation_tokens", c.continuation_tokens}});
        ji["choices"] = std::move(ch);
        items.push_back(std::move(ji));
      }
      t["items"] = std::move(items);
    }
    res[r.name] = std::move(t);
  }
  j["results"] = std::move(res);
  return j;
}

}  // namespace rtnq
