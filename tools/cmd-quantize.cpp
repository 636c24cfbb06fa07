// rtnq quantize IN OUT: the main job. Thin: parse flags, resolve the plan, run the pipeline, print.
#include <cstdio>

#include "command.h"
#include "core/atomic-output.h"
#include "plan-options.h"
#include "quant/quantize-pipeline.h"
#include "rtnq/model.h"
#include "rtnq/plan.h"

namespace rtnq::cli {
namespace {

struct QuantizeArgs {
  std::string input, output, report;
  int threads = 0;
  bool force = false;
  bool no_progress = false;
  double max_shard_gb = 5.0;
  PlanCliOptions plan;
};

int run_quantize(const QuantizeArgs& a) {
  auto model = load_model(a.input);
  if (!model) return report_error("quantize", model.status().message());
  auto plan = plan_from_cli(a.plan);
  if (!plan) return report_error("quantize", plan.status().message());
  auto table = resolve_plan(*plan, model->spec);
  if (!table) return report_error("quantize", table.status().message());

  QuantizeOptions opts;
  opts.output = a.output;
  opts.force = a.force;
  opts.threads = a.threads;
  opts.progress = !a.no_progress;
  opts.max_shard_bytes = uint64_t(a.max_shard_gb * 1e9);
  std::fprintf(stderr, "quantize: %s (%s, %lld layers) -> %s\n", a.input.c_str(),
               std::string(source_format_name(model->format)).c_str(), (long long)model->spec.num_layers,
               a.output.c_str());
  auto rep = quantize_model(*model, *table, opts);
  if (!rep) return report_error("quantize", rep.status().message());
  std::fputs(format_quantize_summary(*rep).c_str(), stdout);
  if (!a.report.empty()) {
    nlohmann::json j = rep->to_json();
    j["plan"] = plan_to_json(*plan);
    Status st = write_file_atomic(a.report, j.dump(2) + "\n");
    if (!st.is_ok()) return report_error("quantize", st.message());
  }
  std::printf("wrote %s\n", a.output.c_str());
  return 0;
}

CommandSetup setup = [](CLI::App& sub) -> std::function<int()> {
  auto a = std::make_shared<QuantizeArgs>();
  sub.add_option("input", a->input, "model: Hugging Face folder, .gguf file or llama2.c .bin")->required();
  sub.add_option("output", a->output, "output folder (compressed-tensors pack-quantized checkpoint)")->required();
  sub.add_option("--threads", a->threads, "worker threads (default: all cores)");
  sub.add_option("--report", a->report, "also write the summary as JSON to this file");
  sub.add_option("--max-shard-size", a->max_shard_gb, "shard size limit in GB (default 5)");
  sub.add_flag("--force", a->force, "replace OUTPUT if it exists");
  sub.add_flag("--no-progress", a->no_progress, "no progress bar");
  add_plan_options(sub, a->plan);
  return [a] { return run_quantize(*a); };
};

const RegisterCommand reg("quantize", "RTN-quantize a model's linear layers and write a vLLM-loadable checkpoint", 30,
                          setup);

}  // namespace
}  // namespace rtnq::cli
