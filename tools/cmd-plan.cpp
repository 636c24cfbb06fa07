// rtnq plan show MODEL [PLAN_FILE]: resolve plan flags / a plan file against a model (its spec only, no
// weights are read) and print the layer x module table, bits per weight and the predicted size.
#include <cctype>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "command.h"
#include "core/progress.h"
#include "plan-options.h"
#include "rtnq/model.h"
#include "rtnq/plan.h"

namespace rtnq::cli {
namespace {

struct PlanShowArgs {
  std::string model;
  std::string plan_file;  // positional PLAN_FILE (same as --plan)
  std::string scale_dtype;
  bool json = false;
  PlanCliOptions plan;
};

std::string count_text(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", double(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f}M", double(n) / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", double(n) / 1e3);
  return std::to_string(n);
}

std::string layers_text(int64_t first, int64_t last) {
  return first == last ? std::to_string(first) : fmt::format("{}-{}", first, last);
}

// Rules that name no group show the base's, which is what they resolve to.
std::string rule_line(const PlanRule& r, const QuantSpec& base) {
  QuantSpec s = r.spec;
  if (s.group_size == kBaseGroup) s.group_size = base.group_size;
  return fmt::format("{:<8} layers {:<12} modules {:<10} {}", format_quant_spec(s), r.layers.to_string(),
                     r.modules.to_string(), r.origin);
}

std::string table_row(const std::string& first, size_t w0, const std::vector<std::string>& cells, size_t w) {
  std::string line = fmt::format("{:<{}}", first, w0);
  for (const auto& c : cells) line += fmt::format("  {:<{}}", c, w);
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

std::string format_text(const LoadedModel& model, const Plan& plan, const PlanTable& table, const PlanStats& st,
                        DType model_dtype, DType scale_dtype) {
  const ModelSpec& spec = model.spec;
  std::string out;
  out += fmt::format("model: {} ({}, {} layers, hidden {}, intermediate {}, {})\n", model.path.string(),
                     source_format_name(model.format), spec.num_layers, spec.hidden_size, spec.intermediate_size,
                     dtype_torch_name(model_dtype));
  out += "rules (applied in order; later rules win):\n";
  out += fmt::format("  base  {}\n", format_quant_spec(plan.base));
  for (size_t i = 0; i < plan.rules.size(); ++i) out += fmt::format("  {:<4}  {}\n", fmt::format("{}.", i + 1), rule_line(plan.rules[i], plan.base));
  if (plan.rules.empty()) out += "  (no rules: every linear at the base)\n";
  out += "\n";

  // Layer x module table with runs of identical layers merged.
  const auto runs = compact_layer_runs(table);
  size_t w0 = 6, w = 4;
  for (auto [a, b] : runs) {
    w0 = std::max(w0, layers_text(a, b).size());
    for (int m = 0; m < kNumModules; ++m) w = std::max(w, format_quant_spec(table.at(a, Module(m))).size());
  }
  std::vector<std::string> cells;
  for (int m = 0; m < kNumModules; ++m) cells.emplace_back(module_name(Module(m)));
  out += table_row("layers", w0, cells, w);
  for (auto [a, b] : runs) {
    cells.clear();
    for (int m = 0; m < kNumModules; ++m) cells.push_back(format_quant_spec(table.at(a, Module(m))));
    out += table_row(layers_text(a, b), w0, cells, w);
  }
  out += "(cells: precision/group size; ch = one scale per output channel; keep = original precision)\n";
  out += fmt::format("lm_head: {}{}; embed_tokens: keep (always)\n\n", format_quant_spec(table.lm_head),
                     spec.tie_word_embeddings ? " (tied to embed_tokens)" : "");

  const double total = double(std::max<int64_t>(st.candidate_weights, 1));
  out += fmt::format("linear weights ({} linears, {}): int4 {} ({:.1f}%), int8 {} ({:.1f}%), keep {} ({:.1f}%)\n",
                     kNumModules * spec.num_layers, count_text(st.candidate_weights), count_text(st.weights_int4),
                     100.0 * double(st.weights_int4) / total, count_text(st.weights_int8),
                     100.0 * double(st.weights_int8) / total, count_text(st.weights_keep),
                     100.0 * double(st.weights_keep) / total);
  out += fmt::format("average bits per linear weight: {:.3f} without scales, {:.3f} with {} scales\n", st.avg_bits,
                     st.avg_bits_with_scales, dtype_torch_name(scale_dtype));
  out += fmt::format("size: {} -> {} predicted ({:.2f}x smaller)\n", format_bytes(st.original_bytes),
                     format_bytes(st.predicted_bytes), st.ratio());
  return out;
}

nlohmann::json format_json(const LoadedModel& model, const Plan& plan, const PlanTable& table, const PlanStats& st,
                           DType model_dtype, DType scale_dtype) {
  nlohmann::json rules = nlohmann::json::array();
  for (const PlanRule& r : plan.rules) {
    QuantSpec s = r.spec;
    if (s.group_size == kBaseGroup) s.group_size = plan.base.group_size;
    rules.push_back({{"layers", r.layers.to_string()},
                     {"modules", r.modules.to_string()},
                     {"spec", format_quant_spec(s)},
                     {"origin", r.origin}});
  }
  return {{"model", model.path.string()},
          {"format", std::string(source_format_name(model.format))},
          {"num_layers", model.spec.num_layers},
          {"model_dtype", std::string(dtype_torch_name(model_dtype))},
          {"scale_dtype", std::string(dtype_torch_name(scale_dtype))},
          {"later_rules_win", true},
          {"plan", plan_to_json(plan)},
          {"rules", std::move(rules)},
          {"table", plan_table_to_json(table)},
          {"stats", plan_stats_to_json(st)}};
}

std::optional<DType> parse_float_dtype(std::string text) {
  for (char& c : text) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (text == "bf16" || text == "bfloat16") return DType::kBF16;
  if (text == "f16" || text == "fp16" || text == "float16") return DType::kF16;
  if (text == "f32" || text == "fp32" || text == "float32") return DType::kF32;
  return std::nullopt;
}

int run_show(PlanShowArgs& a) {
  if (!a.plan_file.empty()) {
    if (!a.plan.plan_file.empty() && a.plan.plan_file != a.plan_file)
      return report_error("plan show", fmt::format("two plan files given ({} and --plan {}); give one", a.plan_file,
                                                   a.plan.plan_file));
    a.plan.plan_file = a.plan_file;
  }
  auto plan = plan_from_cli(a.plan);
  if (!plan) return report_error("plan show", plan.status().message());
  auto model = load_model(a.model);
  if (!model) return report_error("plan show", model.status().message());
  auto table = resolve_plan(*plan, model->spec);
  if (!table) return report_error("plan show", table.status().message());
  const DType model_dtype = is_float(model->spec.torch_dtype) ? model->spec.torch_dtype : DType::kBF16;
  DType scale_dtype = model_dtype;
  if (!a.scale_dtype.empty()) {
    auto d = parse_float_dtype(a.scale_dtype);
    if (!d) return report_error("plan show", fmt::format("--scale-dtype {}: expected bf16, f16 or f32", a.scale_dtype));
    scale_dtype = *d;
  }
  const PlanStats st = plan_stats(*table, model->spec, model_dtype, scale_dtype);
  if (a.json) std::printf("%s\n", format_json(*model, *plan, *table, st, model_dtype, scale_dtype).dump(2).c_str());
  else std::fputs(format_text(*model, *plan, *table, st, model_dtype, scale_dtype).c_str(), stdout);
  return 0;
}

CommandSetup setup = [](CLI::App& sub) -> std::function<int()> {
  auto a = std::make_shared<PlanShowArgs>();
  sub.require_subcommand(1);
  CLI::App* show = sub.add_subcommand(
      "show", "resolve a plan against MODEL (spec only) and print the layer x module table, bits and size");
  show->add_option("model", a->model, "model: Hugging Face folder, .gguf file or llama2.c .bin")->required();
  show->add_option("plan_file", a->plan_file, "rule file (.toml or .json), same as --plan")->check(CLI::ExistingFile);
  show->add_flag("--json", a->json, "print the plan, table and sizes as JSON");
  show->add_option("--scale-dtype", a->scale_dtype, "dtype of the scales for the size estimate (default: the model's)");
  add_plan_options(*show, a->plan);
  return [a, show]() -> int {
    if (show->parsed()) return run_show(*a);
    return 2;
  };
};

const RegisterCommand reg("plan", "show which layers and modules a plan keeps, quantizes to INT8 or INT4", 20, setup);

}  // namespace
}  // namespace rtnq::cli
