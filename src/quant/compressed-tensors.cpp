#include "quant/compressed-tensors.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <map>
#include <set>

#include <fmt/format.h>

namespace rtnq {

namespace {

// "self_attn.q_proj" / "mlp.gate_proj": the part after "model.layers.N.".
std::string module_suffix(Module m) {
  const std::string p = module_hf_prefix(0, m);
  return p.substr(std::string("model.layers.0.").size());
}

std::string escape_dots(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '.') out += '\\';
    out += c;
  }
  return out;
}

nlohmann::json weights_args(const QuantSpec& q) {
  const bool per_channel = q.group_size == kPerChannel;
  return {
      {"num_bits", precision_bits(q.precision)},
      {"type", "int"},
      {"symmetric", true},
      {"strategy", per_channel ? "channel" : "group"},
      {"group_size", per_channel ? nlohmann::json(nullptr) : nlohmann::json(q.group_size)},
      {"dynamic", false},
      {"actorder", nullptr},
      {"block_structure", nullptr},
      {"observer", "minmax"},
      {"observer_kwargs", nlohmann::json::object()},
  };
}

}  // namespace

nlohmann::json compressed_tensors_config(const PlanTable& plan, const ModelSpec& spec) {
  // key: (bits, group) -> module -> layers
  std::map<std::pair<int, int64_t>, std::map<Module, std::vector<int64_t>>> groups;
  std::vector<std::string> ignore;
  for (int64_t l = 0; l < int64_t(plan.layers.size()); ++l) {
    for (int mi = 0; mi < kNumModules; ++mi) {
      const Module m = Module(mi);
      const QuantSpec& q = plan.at(l, m);
      if (q.precision == Precision::kKeep) {
        ignore.push_back(module_hf_prefix(l, m));
      } else {
        groups[{precision_bits(q.precision), q.group_size}][m].push_back(l);
      }
    }
  }
  bool lm_head_quantized = plan.lm_head.precision != Precision::kKeep;
  if (!lm_head_quantized) ignore.push_back("lm_head");

  nlohmann::json config_groups = nlohmann::json::object();
  int gi = 0;
  for (const auto& [key, modules] : groups) {
    nlohmann::json targets = nlohmann::json::array();
    for (const auto& [m, layers] : modules) {
      std::string alt;
      for (int64_t l : layers) alt += (alt.empty() ? "" : "|") + std::to_string(l);
      targets.push_back(fmt::format("re:^model\\.layers\\.({})\\.{}$", alt, escape_dots(module_suffix(m))));
    }
    QuantSpec q{key.first == 8 ? Precision::kInt8 : Precision::kInt4, key.second};
    if (lm_head_quantized && plan.lm_head == q) {
      targets.push_back("re:^lm_head$");
      lm_head_quantized = false;  // placed
    }
    config_groups[fmt::format("group_{}", gi++)] = {
        {"targets", targets}, {"weights", weights_args(q)}, {"input_activations", nullptr},
        {"output_activations", nullptr}, {"format", "pack-quantized"}};
  }
  if (lm_head_quantized) {  // lm_head's scheme is used by no layer
    config_groups[fmt::format("group_{}", gi++)] = {
        {"targets", {"re:^lm_head$"}}, {"weights", weights_args(plan.lm_head)}, {"input_activations", nullptr},
        {"output_activations", nullptr}, {"format", "pack-quantized"}};
  }
  (void)spec;
  return {
      {"quant_method", "compressed-tensors"},
      {"format", "pack-quantized"},
      {"quantization_status", "compressed"},
      {"config_groups", config_groups},
      {"ignore", ignore},
      {"kv_cache_scheme", nullptr},
      {"global_compression_ratio", nullptr},
      {"sparsity_config", nlohmann::json::object()},
      {"version", "0.10.2"},
      {"producer", {{"name", "rtnq"}, {"version", "0.1.0"}, {"method", "rtn"}}},
  };
}

bool target_matches(const std::string& target, const std::string& name) {
  if (target.rfind("re:", 0) == 0) {
    const std::string pattern = target.substr(3);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   PCRE2_ANCHORED, &err, &off, nullptr);
    if (!re) return false;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
    const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(name.c_str()), name.size(), 0, 0, md, nullptr);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
  }
  if (target == "Linear") return name.find("_proj") != std::string::npos || name == "lm_head";
  return target == name;
}

Expected<QuantSpec> scheme_for_module(const nlohmann::json& config, const std::string& module_path) {
  try {
    if (config.value("quant_method", "") != "compressed-tensors")
      return unsupported("quantization_config.quant_method is '" + config.value("quant_method", std::string("?")) +
                         "'; only compressed-tensors checkpoints are supported");
    if (config.contains("ignore"))
      for (const auto& ig : config.at("ignore"))
        if (ig.is_string() && target_matches(ig.get<std::string>(), module_path)) return QuantSpec{};
    std::optional<QuantSpec> found;
    std::string found_group;
    const std::string top_format = config.value("format", "");
    for (const auto& [gname, g] : config.at("config_groups").items()) {
      bool hit = false;
      for (const auto& t : g.at("targets"))
        if (target_matches(t.get<std::string>(), module_path)) hit = true;
      if (!hit) continue;
      if (found)
        return invalid_argument("module " + module_path + " is targeted by both config group " + found_group +
                                " and " + gname);
      const std::string fmt_name = g.contains("format") && g["format"].is_string() ? g["format"].get<std::string>() : top_format;
      if (fmt_name != "pack-quantized")
        return unsupported("config group " + gname + " uses format '" + fmt_name + "'; only pack-quantized is supported");
      if (g.contains("input_activations") && !g["input_activations"].is_null())
        return unsupported("config group " + gname + " quantizes activations; only weight-only schemes are supported");
      const auto& w = g.at("weights");
      if (w.value("type", "int") != "int" || !w.value("symmetric", true))
        return unsupported("config group " + gname + ": only symmetric int weights are supported");
      const int bits = w.at("num_bits").get<int>();
      if (bits != 4 && bits != 8) return unsupported(fmt::format("config group {}: {}-bit weights are not supported", gname, bits));
      const std::string strategy = w.value("strategy", "group");
      QuantSpec q{bits == 8 ? Precision::kInt8 : Precision::kInt4, kPerChannel};
      if (strategy == "group") {
        q.group_size = w.at("group_size").get<int64_t>();
        if (q.group_size <= 0) return corrupt(fmt::format("config group {}: group_size {} must be positive", gname, q.group_size));
      } else if (strategy != "channel") {
        return unsupported("config group " + gname + ": strategy '" + strategy + "' is not supported");
      }
      found = q;
      found_group = gname;
    }
    return found.value_or(QuantSpec{});
  } catch (const nlohmann::json::exception& e) {
    return corrupt(std::string("quantization_config: ") + e.what());
  }
}

}  // namespace rtnq
