// Plan flags -> Plan. The grammar of a rule selector lives in src/quant/plan.cpp (parse_rule_selector)
// so that tests and plan files share it; this file only keeps the command-line order.
#include "plan-options.h"

#include <fmt/format.h>

namespace rtnq::cli {

namespace {

constexpr const char* kSelectorHelp =
    "SEL = LAYERS[:MODULES][@GROUP]; LAYERS = all | first:N | last:N | middle:N | list like 0,3,5-7 "
    "(negative = from the end, -1 = last layer); MODULES = comma list of q k v o gate up down qkv attn mlp "
    "gate_up all (default all); GROUP = -1 or a power of two >= 8 (default: --group-size). "
    "E.g. first:2, last:2:mlp, 0-3:down, all:qkv,o, 5,9:all@64. Repeatable; rules apply after --plan's, "
    "in command-line order, and later rules win.";

}  // namespace

void add_plan_options(CLI::App& app, PlanCliOptions& opts) {
  const std::string group = "Plan (later rules win)";
  app.add_option_function<int>(
         "--bits", [&opts](const int& b) { opts.bits = b; },
         "base precision of every linear: 4 or 8 (default 4)")
      ->check(CLI::IsMember({4, 8}))
      ->group(group);
  app.add_option_function<int64_t>(
         "--group-size", [&opts](const int64_t& g) { opts.group_size = g; },
         "base group size: 32, 64, 128 (default), ... or -1 for one scale per output channel")
      ->group(group);
  app.add_option("--plan", opts.plan_file, "rule file (.toml or .json); flag rules are applied after its rules")
      ->check(CLI::ExistingFile)
      ->group(group);
  auto rule_flag = [&](const std::string& name, const std::string& help) {
    app.add_option_function<std::string>(
           name, [&opts, name](const std::string& v) { opts.rule_flags.push_back({name, v}); }, help)
        ->trigger_on_parse()  // runs per occurrence, as parsed: keeps the order across options
        ->type_name(name.find("first") != std::string::npos || name.find("last") != std::string::npos ? "N" : "SEL")
        ->group(group);
  };
  rule_flag("--int8", std::string("keep the selected modules at INT8. ") + kSelectorHelp);
  rule_flag("--int4", "quantize the selected modules to INT4 (SEL as for --int8)");
  rule_flag("--keep", "keep the selected modules at original precision (SEL as for --int8, without @GROUP)");
  rule_flag("--keep-first", "keep the first N layers whole (= --keep first:N)");
  rule_flag("--keep-last", "keep the last N layers whole (= --keep last:N)");
  rule_flag("--int8-first", "INT8 for the first N layers (= --int8 first:N)");
  rule_flag("--int8-last", "INT8 for the last N layers (= --int8 last:N)");
  app.add_option("--lm-head", opts.lm_head,
                 "lm_head precision: keep (default), int8 or int4, optionally @GROUP (untied models only; "
                 "embeddings are always kept)")
      ->group(group);
}

Expected<Plan> plan_from_cli(const PlanCliOptions& opts) {
  Plan plan;
  if (!opts.plan_file.empty()) {
    RTNQ_ASSIGN_OR_RETURN(plan, load_plan_file(opts.plan_file));
  }
  if (opts.bits) {
    if (*opts.bits != 4 && *opts.bits != 8) return invalid_argument(fmt::format("--bits {}: expected 4 or 8", *opts.bits));
    plan.base.precision = *opts.bits == 8 ? Precision::kInt8 : Precision::kInt4;
  }
  if (opts.group_size) {
    if (!is_valid_group_size(*opts.group_size))
      return invalid_argument(fmt::format("--group-size {}: expected -1 (per channel) or a power of two >= 8 (32, 64, 128, ...)",
                                          *opts.group_size));
    plan.base.group_size = *opts.group_size;
  }
  for (const auto& [flag, value] : opts.rule_flags) {
    const std::string origin = fmt::format("flag {} {}", flag, value);
    std::string selector = value;
    Precision p = Precision::kKeep;
    if (flag == "--int8" || flag == "--int8-first" || flag == "--int8-last") p = Precision::kInt8;
    else if (flag == "--int4") p = Precision::kInt4;
    if (flag.ends_with("-first") || flag.ends_with("-last")) {
      // A bare count; anything else is a mistake worth a precise message, not a selector.
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
        return invalid_argument(fmt::format("{}: expected a number of layers, got '{}'", origin, value));
      selector = fmt::format("{}:{}", flag.ends_with("-first") ? "first" : "last", value);
    }
    RTNQ_ASSIGN_OR_RETURN(PlanRule rule, parse_rule_selector(selector, p, origin));
    plan.rules.push_back(std::move(rule));
  }
  if (!opts.lm_head.empty()) {
    std::string text = opts.lm_head;
    QuantSpec s{Precision::kKeep, kBaseGroup};
    if (size_t at = text.find('@'); at != std::string::npos) {
      const std::string g = text.substr(at + 1);
      text = text.substr(0, at);
      int64_t v = 0;
      try {
        size_t used = 0;
        v = std::stoll(g, &used);
        if (used != g.size()) v = 0;
      } catch (const std::exception&) {
        v = 0;
      }
      if (!is_valid_group_size(v))
        return invalid_argument(fmt::format("--lm-head {}: bad group '@{}': expected -1 or a power of two >= 8", opts.lm_head, g));
      s.group_size = v;
    }
    auto p = parse_precision(text);
    if (!p) return invalid_argument(fmt::format("--lm-head {}: expected keep, int8 or int4", opts.lm_head));
    if (*p == Precision::kKeep && s.group_size != kBaseGroup)
      return invalid_argument(fmt::format("--lm-head {}: a kept lm_head has no group size", opts.lm_head));
    s.precision = *p;
    plan.lm_head = s;
  }
  return plan;
}

}  // namespace rtnq::cli
