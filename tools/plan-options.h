// The plan flags shared by `rtnq plan show` and `rtnq quantize`: a base precision and group, an
// optional rule file, and rule flags applied after the file's rules in command-line order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "rtnq/plan.h"

namespace rtnq::cli {

struct PlanCliOptions {
  std::optional<int> bits;                // --bits 4|8 (base precision; default int4)
  std::optional<int64_t> group_size;      // --group-size N (base group; default 128; -1 per channel)
  std::string plan_file;                  // --plan FILE (.toml or .json)
  std::string lm_head;                    // --lm-head keep|int8|int4[@GROUP]
  // Rule flags in the order they appeared on the command line, across all rule options: CLI11 keeps
  // order within one option only, so each option pushes here as it is parsed.
  struct RuleFlag {
    std::string flag;   // "--int8", "--keep-first", ...
    std::string value;  // "last:2:mlp", "2"
  };
  std::vector<RuleFlag> rule_flags;
};

// Registers --bits, --group-size, --plan, --int8, --int4, --keep, --keep-first, --keep-last,
// --int8-first, --int8-last, --lm-head on `app`. `opts` must outlive `app`'s parsing.
void add_plan_options(CLI::App& app, PlanCliOptions& opts);

// The flags as a Plan: --plan's rules first (if any), then the rule flags in command-line order.
// --bits/--group-size override the file's base; --lm-head overrides its [lm_head].
Expected<Plan> plan_from_cli(const PlanCliOptions& opts);

}  // namespace rtnq::cli
