// Selective precision: which (layer, module) is kept, INT8 or INT4, and with what group size.
// Rules (from CLI flags or a JSON/TOML file) are resolved against a ModelSpec into a PlanTable.
//
// Semantics of a Plan:
//   1. every linear of every layer starts at `base` (default int4, group 128);
//   2. rules are applied in order and LATER RULES WIN: a cell's spec is that of the last rule selecting it;
//   3. a rule selects the cartesian product of a LayerSet and a ModuleSet ("first:2" x "all" keeps whole
//      layers, "all" x "down" touches one module everywhere, "0-3" x "mlp" is a hybrid of both);
//   4. lm_head stays at original precision unless `lm_head` says otherwise; embeddings are always kept.
// resolve_plan() then refuses tables vLLM could not load (q/k/v or gate/up with different specs: they
// are fused into qkv_proj / gate_up_proj), group sizes that do not divide a module's in_features, and
// rules that select nothing or layers the model does not have.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "rtnq/model.h"
#include "rtnq/quant.h"

namespace rtnq {

// The resolved decision for every quantizable linear, plus the non-layer tensors.
struct PlanTable {
  std::vector<std::array<QuantSpec, kNumModules>> layers;  // [num_layers][module]
  QuantSpec lm_head;                                       // default: kKeep
  QuantSpec embed_tokens;                                  // default: kKeep (never packed; reserved)
  const QuantSpec& at(int64_t layer, Module m) const { return layers[size_t(layer)][size_t(m)]; }
};

// In a rule's (or lm_head's) QuantSpec: "use the plan's base group size", so that `--group-size 64`
// also applies to rules of a plan file that name no group of their own.
inline constexpr int64_t kBaseGroup = 0;

// Which layers a rule touches. Text forms (parse_layer_set / to_string):
//   "all" | "first:N" | "last:N" | "middle:N" | a list of indices and inclusive ranges "0,3,5-7".
// Negative indices count from the end: "-1" is the last layer, "-4--1" the last four.
// "middle:N" is the N layers starting at (num_layers - N) / 2.
struct LayerSet {
  enum class Kind : uint8_t { kAll, kFirst, kLast, kMiddle, kList };
  struct Range {
    int64_t first = 0, last = 0;  // inclusive, possibly negative (from the end)
    bool operator==(const Range&) const = default;
  };
  Kind kind = Kind::kAll;
  int64_t count = 0;          // kFirst / kLast / kMiddle
  std::vector<Range> ranges;  // kList

  static LayerSet all() { return {}; }
  static LayerSet first(int64_t n) { return {Kind::kFirst, n, {}}; }
  static LayerSet last(int64_t n) { return {Kind::kLast, n, {}}; }
  static LayerSet middle(int64_t n) { return {Kind::kMiddle, n, {}}; }
  static LayerSet list(std::vector<Range> r) { return {Kind::kList, 0, std::move(r)}; }

  // Sorted, distinct layer indices for a model of `num_layers`; refuses indices out of range and
  // counts larger than the model (the message says which and how many layers there are).
  Expected<std::vector<int64_t>> resolve(int64_t num_layers) const;
  std::string to_string() const;
  bool operator==(const LayerSet&) const = default;
};
Expected<LayerSet> parse_layer_set(std::string_view text);

// A subset of the seven modules. Names: q k v o gate up down (or q_proj, ..., down_proj) and groups
// qkv, attn (= q,k,v,o), mlp (= gate,up,down), gate_up, all; combined with commas: "qkv,o", "attn,down".
struct ModuleSet {
  uint8_t mask = 0;  // bit i = Module(i)

  static ModuleSet all() { return {uint8_t((1u << kNumModules) - 1)}; }
  static ModuleSet of(std::initializer_list<Module> ms) {
    ModuleSet s;
    for (Module m : ms) s.mask = uint8_t(s.mask | (1u << unsigned(m)));
    return s;
  }
  bool contains(Module m) const { return (mask >> unsigned(m)) & 1u; }
  bool empty() const { return mask == 0; }
  // Spelled with the group names where they fit: "all", "attn", "qkv,down", "o,gate_up", "q".
  std::string to_string() const;
  bool operator==(const ModuleSet&) const = default;
};
Expected<ModuleSet> parse_module_set(std::string_view text);

struct PlanRule {
  LayerSet layers;
  ModuleSet modules = ModuleSet::all();
  QuantSpec spec;      // group_size kBaseGroup: the base's; ignored for kKeep
  std::string origin;  // where it came from, for messages: "flag --int8 first:2", "plan.toml rule 3"
};

struct Plan {
  QuantSpec base{Precision::kInt4, 128};
  std::vector<PlanRule> rules;         // applied in order; later rules win
  std::optional<QuantSpec> lm_head;    // unset: kept at original precision
};

// "int4/128", "int8/64", "int4/ch" (per channel), "keep"; a rule spec with kBaseGroup prints as "int8".
std::string format_quant_spec(const QuantSpec& s);
// "0-3, 5, 7-9" for sorted distinct indices.
std::string format_layer_list(const std::vector<int64_t>& layers);
// Accepted group sizes: kPerChannel or a power of two >= 8 (what the packers and kernels handle).
bool is_valid_group_size(int64_t g);
// "keep" | "int8" | "int4" (also "fp16"/"bf16"/"original"/"none" for keep, "8"/"4").
std::optional<Precision> parse_precision(std::string_view text);

// One rule from the CLI selector grammar  LAYERS[:MODULES][@GROUP]
//   LAYERS  = all | first:N | last:N | middle:N | "0,3,5-7" (negative = from the end)
//   MODULES = comma list of q k v o gate up down qkv attn mlp gate_up all   (default: all)
//   GROUP   = a power of two >= 8 or -1 (per channel)                    (default: the base's)
// e.g. "first:2", "last:2:mlp", "0-3:down", "all:qkv,o", "5,9:all@64". `keep` takes no @GROUP.
Expected<PlanRule> parse_rule_selector(std::string_view selector, Precision precision, std::string origin);

// Apply the rules and check the result against the model (see the top of this file).
Expected<PlanTable> resolve_plan(const Plan& plan, const ModelSpec& spec);

// Runs of consecutive layers whose seven specs are identical: [(first, last)], in order.
std::vector<std::pair<int64_t, int64_t>> compact_layer_runs(const PlanTable& table);

// Rule files. Format by extension: .toml or .json. Schema (TOML; JSON uses the same keys, "rules" array):
//   [base]      bits = 4 | 8  (or precision = "int4"|"int8"|"keep"),  group_size = 128
//   [[rule]]    layers = "first:2", modules = "all", precision = "int8", group_size = 64 (optional)
//   [lm_head]   precision = "keep" | "int8" | "int4", group_size (optional)
// Unknown keys and bad values are errors naming the file and the rule number (1-based).
Expected<Plan> load_plan_file(const std::filesystem::path& path);
// The same, from an already parsed document; `source` names it in messages and origins.
Expected<Plan> plan_from_json(const nlohmann::json& doc, const std::string& source);
// The file schema (JSON); plan_from_json(plan_to_json(p)) gives back p (origins aside).
nlohmann::json plan_to_json(const Plan& plan);
// The resolved table: {"layers": [{"first":0,"last":1,"q":"int4/128",...}], "lm_head": ..., ...}.
nlohmann::json plan_table_to_json(const PlanTable& table);

// Size accounting of a resolved plan (compressed-tensors pack-quantized checkpoint layout).
struct PlanStats {
  // Over the quantization candidates: the 7 linears of every layer.
  int64_t candidate_weights = 0;
  int64_t weights_keep = 0, weights_int8 = 0, weights_int4 = 0;
  int64_t linears_keep = 0, linears_int8 = 0, linears_int4 = 0;
  // Average bits per candidate weight; kept weights count at the model dtype's width. The "with
  // scales" figure adds scale_bits / group for every quantized weight.
  double avg_bits = 0.0;
  double avg_bits_with_scales = 0.0;
  // Every tensor of the checkpoint at the model dtype, and the predicted output: packed int32 weights +
  // scales + weight_shape (2 x int64) per quantized linear, everything else (embeddings, norms,
  // untied lm_head, biases, kept linears) at the model dtype.
  uint64_t original_bytes = 0;
  uint64_t predicted_bytes = 0;
  double ratio() const { return predicted_bytes ? double(original_bytes) / double(predicted_bytes) : 0.0; }
};
PlanStats plan_stats(const PlanTable& table, const ModelSpec& spec, DType model_dtype, DType scale_dtype);
nlohmann::json plan_stats_to_json(const PlanStats& stats);

}  // namespace rtnq
