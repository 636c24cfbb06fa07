// Plan rule files (TOML or JSON, one schema) and the JSON forms of plans and resolved tables.
// TOML is converted to JSON first so that both formats go through one validator and give the same
// messages.
#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "core/read-file.h"
#include "rtnq/plan.h"

namespace rtnq {

namespace {

// TOML document -> JSON value (dates and times become their TOML text; we use none of them).
nlohmann::json toml_to_json(const toml::node& node) {
  if (const auto* t = node.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : *t) out[std::string(k.str())] = toml_to_json(v);
    return out;
  }
  if (const auto* a = node.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : *a) out.push_back(toml_to_json(v));
    return out;
  }
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return i->get();
  if (const auto* f = node.as_floating_point()) return f->get();
  if (const auto* b = node.as_boolean()) return b->get();
  std::ostringstream text;
  if (const auto* d = node.as_date()) text << *d;
  else if (const auto* tm = node.as_time()) text << *tm;
  else if (const auto* dt = node.as_date_time()) text << *dt;
  return text.str();
}

std::string short_json(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// Validates one table of the document; `where` is "file: rule 3" etc.
class TableReader {
 public:
  TableReader(const nlohmann::json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  Status check_object() const {
    if (!obj_.is_object()) return invalid_argument(fmt::format("{}: expected a table, got {}", where_, short_json(obj_)));
    return Status::ok();
  }
  Status check_keys(std::initializer_list<std::string_view> allowed) const {
    for (const auto& [k, v] : obj_.items()) {
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      std::string list;
      for (auto a : allowed) {
        list += list.empty() ? "" : ", ";
        list += std::string(a);
      }
      return invalid_argument(fmt::format("{}: unknown key '{}' (expected {})", where_, k, list));
    }
    return Status::ok();
  }
  const nlohmann::json* get(std::string_view key) const {
    auto it = obj_.find(std::string(key));
    return it == obj_.end() ? nullptr : &*it;
  }
  Status error(std::string_view key, std::string_view what) const {
    return invalid_argument(fmt::format("{}: '{}' {}", where_, key, what));
  }
  // Optional string; sets `out` when present.
  Status string_field(std::string_view key, std::optional<std::string>& out) const {
    const auto* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_string()) return error(key, fmt::format("must be a string, got {}", short_json(*v)));
    out = v->get<std::string>();
    return Status::ok();
  }
  Status int_field(std::string_view key, std::optional<int64_t>& out) const {
    const auto* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_number_integer()) return error(key, fmt::format("must be an integer, got {}", short_json(*v)));
    out = v->get<int64_t>();
    return Status::ok();
  }
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& obj_;
  std::string where_;
};

constexpr std::string_view kGroupHelp = "must be -1 (per channel) or a power of two >= 8 (32, 64, 128, ...)";

// precision = "int8" | bits = 8, and group_size, shared by [base], [[rule]] and [lm_head].
Expected<QuantSpec> read_spec(const TableReader& r, bool allow_bits, int64_t default_group) {
  std::optional<std::string> precision_text;
  std::optional<int64_t> bits, group;
  RTNQ_RETURN_IF_ERROR(r.string_field("precision", precision_text));
  if (allow_bits) RTNQ_RETURN_IF_ERROR(r.int_field("bits", bits));
  RTNQ_RETURN_IF_ERROR(r.int_field("group_size", group));
  QuantSpec s{Precision::kKeep, default_group};
  if (precision_text && bits)
    return invalid_argument(fmt::format("{}: give either 'precision' or 'bits', not both", r.where()));
  if (precision_text) {
    auto p = parse_precision(*precision_text);
    if (!p) return r.error("precision", fmt::format("must be \"keep\", \"int8\" or \"int4\", got \"{}\"", *precision_text));
    s.precision = *p;
  } else if (bits) {
    if (*bits != 4 && *bits != 8) return r.error("bits", fmt::format("must be 4 or 8, got {}", *bits));
    s.precision = *bits == 8 ? Precision::kInt8 : Precision::kInt4;
  } else {
    return invalid_argument(fmt::format("{}: missing 'precision' (\"keep\", \"int8\" or \"int4\")", r.where()));
  }
  if (group) {
    if (s.precision == Precision::kKeep)
      return r.error("group_size", "makes no sense with precision \"keep\" (kept modules have no groups)");
    if (!is_valid_group_size(*group)) return r.error("group_size", fmt::format("{}, got {}", kGroupHelp, *group));
    s.group_size = *group;
  }
  return s;
}

// layers = "first:2" | 3 | [0, 1, -1] | ["0-3", 7]
Expected<LayerSet> read_layers(const TableReader& r) {
  const auto* v = r.get("layers");
  if (!v) return LayerSet::all();
  auto parse = [&](const std::string& text) -> Expected<LayerSet> {
    auto s = parse_layer_set(text);
    if (!s) return r.error("layers", s.status().message());
    return s;
  };
  if (v->is_string()) return parse(v->get<std::string>());
  if (v->is_number_integer()) return parse(std::to_string(v->get<int64_t>()));
  if (v->is_array() && !v->empty()) {
    std::string text;
    for (const auto& e : *v) {
      if (!e.is_string() && !e.is_number_integer())
        return r.error("layers", fmt::format("array items must be layer indices or ranges, got {}", short_json(e)));
      std::string item = e.is_string() ? e.get<std::string>() : std::to_string(e.get<int64_t>());
      if (item.find(':') != std::string::npos || item == "all")
        return r.error("layers", fmt::format("'{}' cannot be part of a list; give it as the whole value", item));
      text += text.empty() ? "" : ",";
      text += item;
    }
    return parse(text);
  }
  return r.error("layers", fmt::format("must be a string like \"first:2\" or \"0,3,5-7\", an index, or an array of them; got {}",
                                       short_json(*v)));
}

// modules = "qkv,o" | ["q", "k", "v"]
Expected<ModuleSet> read_modules(const TableReader& r) {
  const auto* v = r.get("modules");
  if (!v) return ModuleSet::all();
  std::string text;
  if (v->is_string()) {
    text = v->get<std::string>();
  } else if (v->is_array() && !v->empty()) {
    for (const auto& e : *v) {
      if (!e.is_string()) return r.error("modules", fmt::format("array items must be module names, got {}", short_json(e)));
      text += text.empty() ? "" : ",";
      text += e.get<std::string>();
    }
  } else {
    return r.error("modules", fmt::format("must be a string like \"qkv,o\" or an array of names; got {}", short_json(*v)));
  }
  auto s = parse_module_set(text);
  if (!s) return r.error("modules", s.status().message());
  return s;
}

std::string file_label(const std::string& source) {
  const std::string name = std::filesystem::path(source).filename().string();
  return name.empty() ? source : name;
}

}  // namespace

Expected<Plan> plan_from_json(const nlohmann::json& doc, const std::string& source) {
  TableReader top(doc, source);
  RTNQ_RETURN_IF_ERROR(top.check_object());
  RTNQ_RETURN_IF_ERROR(top.check_keys({"base", "rule", "rules", "lm_head", "embed_tokens", "description"}));
  Plan plan;
  if (const auto* base = top.get("base")) {
    TableReader r(*base, source + ": [base]");
    RTNQ_RETURN_IF_ERROR(r.check_object());
    RTNQ_RETURN_IF_ERROR(r.check_keys({"bits", "precision", "group_size"}));
    // A base that names only its group keeps the default int4.
    if (!r.get("bits") && !r.get("precision")) {
      std::optional<int64_t> group;
      RTNQ_RETURN_IF_ERROR(r.int_field("group_size", group));
      if (group && !is_valid_group_size(*group)) return r.error("group_size", fmt::format("{}, got {}", kGroupHelp, *group));
      if (group) plan.base.group_size = *group;
    } else {
      RTNQ_ASSIGN_OR_RETURN(plan.base, read_spec(r, /*allow_bits=*/true, plan.base.group_size));
    }
  }
  if (top.get("rule") && top.get("rules"))
    return invalid_argument(fmt::format("{}: give rules as either 'rule' or 'rules', not both", source));
  const nlohmann::json* rules = top.get("rules") ? top.get("rules") : top.get("rule");
  if (rules) {
    if (!rules->is_array())
      return invalid_argument(fmt::format("{}: 'rules' must be an array of tables ([[rule]] in TOML), got {}", source,
                                          short_json(*rules)));
    int n = 0;
    for (const auto& item : *rules) {
      ++n;
      TableReader r(item, fmt::format("{}: rule {}", source, n));
      RTNQ_RETURN_IF_ERROR(r.check_object());
      RTNQ_RETURN_IF_ERROR(r.check_keys({"layers", "modules", "precision", "bits", "group_size", "comment"}));
      PlanRule rule;
      RTNQ_ASSIGN_OR_RETURN(rule.layers, read_layers(r));
      RTNQ_ASSIGN_OR_RETURN(rule.modules, read_modules(r));
      RTNQ_ASSIGN_OR_RETURN(rule.spec, read_spec(r, /*allow_bits=*/true, kBaseGroup));
      rule.origin = fmt::format("{} rule {}", file_label(source), n);
      plan.rules.push_back(std::move(rule));
    }
  }
  if (const auto* lm = top.get("lm_head")) {
    TableReader r(*lm, source + ": [lm_head]");
    RTNQ_RETURN_IF_ERROR(r.check_object());
    RTNQ_RETURN_IF_ERROR(r.check_keys({"precision", "bits", "group_size"}));
    RTNQ_ASSIGN_OR_RETURN(plan.lm_head, read_spec(r, /*allow_bits=*/true, kBaseGroup));
  }
  if (const auto* emb = top.get("embed_tokens")) {
    TableReader r(*emb, source + ": [embed_tokens]");
    RTNQ_RETURN_IF_ERROR(r.check_object());
    RTNQ_RETURN_IF_ERROR(r.check_keys({"precision"}));
    RTNQ_ASSIGN_OR_RETURN(QuantSpec s, read_spec(r, /*allow_bits=*/false, kBaseGroup));
    if (s.precision != Precision::kKeep)
      return invalid_argument(fmt::format("{}: [embed_tokens]: embeddings are always kept at original precision "
                                          "(vLLM does not load quantized embeddings); remove the table or say \"keep\"",
                                          source));
  }
  return plan;
}

Expected<Plan> load_plan_file(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext != ".toml" && ext != ".json")
    return invalid_argument(fmt::format("plan file {}: unknown format '{}'; expected a .toml or .json file", path.string(), ext));
  auto read = read_file(path);
  if (!read) return Status(read.status().code(), "plan file " + read.status().message());
  const std::string text = std::move(read).value();
  nlohmann::json doc;
  if (ext == ".toml") {
    try {
      toml::table t = toml::parse(text, path.string());
      doc = toml_to_json(t);
    } catch (const toml::parse_error& e) {
      return invalid_argument(fmt::format("plan file {}: line {}, column {}: {}", path.string(), e.source().begin.line,
                                          e.source().begin.column, e.description()));
    }
  } else {
    try {
      doc = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      return invalid_argument(fmt::format("plan file {}: not valid JSON: {}", path.string(), e.what()));
    }
  }
  return plan_from_json(doc, path.string());
}

nlohmann::json plan_to_json(const Plan& plan) {
  auto spec_json = [](const QuantSpec& s) {
    nlohmann::json j = {{"precision", std::string(precision_name(s.precision))}};
    if (s.precision != Precision::kKeep && s.group_size != kBaseGroup) j["group_size"] = s.group_size;
    return j;
  };
  nlohmann::json out;
  out["base"] = spec_json(plan.base);
  out["rules"] = nlohmann::json::array();
  for (const PlanRule& r : plan.rules) {
    nlohmann::json j = {{"layers", r.layers.to_string()}, {"modules", r.modules.to_string()}};
    j.update(spec_json(r.spec));
    out["rules"].push_back(std::move(j));
  }
  if (plan.lm_head) out["lm_head"] = spec_json(*plan.lm_head);
  return out;
}

nlohmann::json plan_table_to_json(const PlanTable& table) {
  nlohmann::json rows = nlohmann::json::array();
  for (auto [first, last] : compact_layer_runs(table)) {
    nlohmann::json row = {{"first", first}, {"last", last}};
    for (int m = 0; m < kNumModules; ++m)
      row[std::string(module_name(Module(m)))] = format_quant_spec(table.at(first, Module(m)));
    rows.push_back(std::move(row));
  }
  return {{"num_layers", table.layers.size()},
          {"layers", std::move(rows)},
          {"lm_head", format_quant_spec(table.lm_head)},
          {"embed_tokens", format_quant_spec(table.embed_tokens)}};
}

}  // namespace rtnq
