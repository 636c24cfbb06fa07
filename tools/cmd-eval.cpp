// `rtnq eval MODEL [--tasks arc_easy,arc_challenge,piqa,winogrande,hellaswag] [--task-file FILE]...
//  [--data-dir DIR] [--limit N] [--batch B] [--json FILE] [--per-item] [--dump-requests FILE] [--threads N]`:
// zero-shot accuracy with lm-evaluation-harness's scoring, printed as the harness's summary table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/atomic-output.h"
#include "core/progress.h"
#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "eval/task-file.h"
#include "eval/zeroshot.h"
#include "rtnq/model.h"

namespace rtnq::cli {
namespace {

struct EvalOptions {
  std::string model, tasks, data_dir, json, dump_requests;
  std::vector<std::string> task_files;
  int64_t limit = 0, batch = 1;
  bool per_item = false;
  int threads = 0;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const size_t b = part.find_first_not_of(" \t"), e = part.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(part.substr(b, e - b + 1));
  }
  return out;
}

int run_eval(const EvalOptions& o) {
  if (o.limit < 0) return report_error("eval", fmt::format("--limit {} must be >= 0", o.limit));
  if (o.batch < 1) return report_error("eval", fmt::format("--batch {} must be >= 1", o.batch));
  std::vector<std::string> names = split_list(o.tasks);
  if (names.empty() && o.task_files.empty()) names = known_task_names();

  // Read every task before the model: a bad file or name fails in a second, not after loading.
  std::vector<Task> tasks;
  if (!names.empty()) {
    std::filesystem::path dir = o.data_dir;
    if (dir.empty()) {
      auto d = default_zeroshot_dir();
      if (!d) return report_error("eval", d.status().to_string());
      dir = *d;
    }
    for (const std::string& name : names) {
      auto t = load_named_task(name, dir);
      if (!t) return report_error("eval", t.status().to_string());
      tasks.push_back(std::move(*t));
    }
  }
  for (const std::string& f : o.task_files) {
    auto t = load_task_file(f);
    if (!t) return report_error("eval", t.status().to_string());
    tasks.push_back(std::move(*t));
  }

  if (!o.dump_requests.empty()) {
    // The harness requests as built from the files, one JSON line per choice: lets another
    // implementation (scripts/golden/eval_loglik.py) be checked against ours string for string.
    std::string out;
    for (const Task& t : tasks) {
      const size_t n = o.limit > 0 ? std::min(size_t(o.limit), t.items.size()) : t.items.size();
      for (size_t i = 0; i < n; ++i)
        for (size_t k = 0; k < t.items[i].choices.size(); ++k) {
          const TaskChoice& c = t.items[i].choices[k];
          nlohmann::ordered_json j{{"task", t.name}, {"line", t.items[i].line}, {"choice", k},
                                   {"context", c.context}, {"continuation", c.continuation}};
          out += j.dump() + "\n";
        }
    }
    Status st = write_file_atomic(o.dump_requests, out);
    if (!st.is_ok()) return report_error("eval", st.with_context("--dump-requests").to_string());
  }

  auto loaded = load_model(o.model);
  if (!loaded) return report_error("eval", loaded.status().to_string());
  auto tok = make_tokenizer(loaded->tokenizer);
  if (!tok) return report_error("eval", tok.status().with_context(o.model).to_string());
  auto model = LlamaModel::create(std::move(*loaded), o.threads);
  if (!model) return report_error("eval", model.status().to_string());
  std::fprintf(stderr, "rtnq eval: %s (%s); BOS %s; %zu task(s)%s\n", o.model.c_str(), (*model)->describe().c_str(),
               (*tok)->add_bos_default() ? "added (tokenizer default)" : "not added (tokenizer default)", tasks.size(),
               o.limit > 0 ? fmt::format(", first {} items each", o.limit).c_str() : "");

  std::vector<TaskResult> results;
  ZeroShotParams params;
  params.limit = o.limit;
  params.batch = o.batch;
  for (const Task& task : tasks) {
    std::fprintf(stderr, "  %s: %s, %zu items (%s)\n", task.name.c_str(), task.file.string().c_str(), task.items.size(),
                 std::string(task_format_name(task.format)).c_str());
    auto last_print = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    auto result = evaluate_zeroshot(**model, **tok, task, params, [&](const ZeroShotProgress& p) {
      const auto now = std::chrono::steady_clock::now();
      if (p.done != p.total && now - last_print < std::chrono::seconds(2)) return;
      last_print = now;
      std::fprintf(stderr, "  %s [%lld/%lld] acc %.4f, %.1f items/s, elapsed %s, ETA %s\n", p.task.c_str(),
                   static_cast<long long>(p.done), static_cast<long long>(p.total), p.acc,
                   p.seconds > 0 ? double(p.done) / p.seconds : 0.0, format_seconds(p.seconds).c_str(),
                   format_seconds(p.eta_seconds).c_str());
    });
    if (!result) return report_error("eval", result.status().to_string());
    results.push_back(std::move(*result));
  }

  std::printf("%s", format_zeroshot_table(results).c_str());
  if (!o.json.empty()) {
    const auto j = zeroshot_results_to_json(o.model, results, o.per_item);
    Status st = write_file_atomic(o.json, j.dump(2) + "\n");
    if (!st.is_ok()) return report_error("eval", st.with_context("--json " + o.json).to_string());
    std::fprintf(stderr, "wrote %s\n", o.json.c_str());
  }
  return 0;
}

RegisterCommand reg("eval", "Zero-shot accuracy (ARC, PIQA, Winogrande, HellaSwag) with lm-evaluation-harness scoring", 60,
                    [](CLI::App& sub) -> std::function<int()> {
                      auto o = std::make_shared<EvalOptions>();
                      sub.add_option("model", o->model, "HF folder, .gguf file or llama2.c .bin checkpoint")->required();
                      sub.add_option("--tasks", o->tasks,
                                     "Comma list of arc_easy, arc_challenge, piqa, winogrande, hellaswag "
                                     "(default: all five unless --task-file is given)");
                      sub.add_option("--task-file", o->task_files,
                                     "A task file in one of the supported forms (jsonl query/choices/gold, "
                                     "jsonl context_options/continuation/gold, HellaSwag .txt[.bz2]); repeatable");
                      sub.add_option("--data-dir", o->data_dir,
                                     "Folder of the named tasks' files (default: $RTNQ_SHARED/data/zeroshot or "
                                     "../shared/data/zeroshot)");
                      sub.add_option("--limit", o->limit, "Score only the first N items of each task (0 = all)");
                      sub.add_option("--batch", o->batch, "Items per progress step (default 1)");
                      sub.add_option("--json", o->json, "Also write the results as JSON to FILE");
                      sub.add_option("--dump-requests", o->dump_requests,
                                     "Write every (context, continuation) request as JSON lines to FILE");
                      sub.add_flag("--per-item", o->per_item, "With --json: every choice's log-likelihood and greedy flag");
                      sub.add_option("--threads", o->threads, "Worker threads (default: all cores)");
                      return [o] { return run_eval(*o); };
                    });

}  // namespace
}  // namespace rtnq::cli
