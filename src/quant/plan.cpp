// Plans: selector parsing (layers, modules, the CLI rule grammar) and resolution of rules against a
// model into a PlanTable, with the checks that keep the table loadable by vLLM.
#include "rtnq/plan.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include <fmt/format.h>

#include "core/check.h"

namespace rtnq {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// A whole-string decimal integer with an optional leading '-'.
std::optional<int64_t> parse_int(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Reads "-?digits" at the front of `s`, advancing it.
std::optional<int64_t> take_index(std::string_view& s) {
  size_t n = 0;
  if (n < s.size() && s[n] == '-') ++n;
  size_t digits_start = n;
  while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n]))) ++n;
  if (n == digits_start) return std::nullopt;
  auto v = parse_int(s.substr(0, n));
  if (v) s.remove_prefix(n);
  return v;
}

constexpr std::string_view kLayerSetHelp =
    "expected all, first:N, last:N, middle:N or a list of indices and ranges like 0,3,5-7 "
    "(negative indices count from the end: -1 is the last layer)";

constexpr std::string_view kModuleSetHelp =
    "expected a comma list of q, k, v, o, gate, up, down or the groups qkv, attn, mlp, gate_up, all";

std::string index_text(int64_t i) { return std::to_string(i); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Small formatting helpers

// Declared in quant.h; defined here because precisions are the plans' vocabulary.
std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::kKeep: return "keep";
    case Precision::kInt8: return "int8";
    case Precision::kInt4: return "int4";
  }
  return "?";
}

std::string format_quant_spec(const QuantSpec& s) {
  if (s.precision == Precision::kKeep) return "keep";
  std::string p(precision_name(s.precision));
  if (s.group_size == kBaseGroup) return p;
  if (s.group_size == kPerChannel) return p + "/ch";
  return fmt::format("{}/{}", p, s.group_size);
}

std::string format_layer_list(const std::vector<int64_t>& layers) {
  std::string out;
  for (size_t i = 0; i < layers.size();) {
    size_t j = i;
    while (j + 1 < layers.size() && layers[j + 1] == layers[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j == i ? std::to_string(layers[i]) : fmt::format("{}-{}", layers[i], layers[j]);
    i = j + 1;
  }
  return out;
}

bool is_valid_group_size(int64_t g) {
  if (g == kPerChannel) return true;
  return g >= 8 && (g & (g - 1)) == 0;
}

std::optional<Precision> parse_precision(std::string_view text) {
  const std::string t = lower(trim(text));
  if (t == "keep" || t == "original" || t == "none" || t == "fp16" || t == "bf16" || t == "f16" || t == "f32" ||
      t == "fp32")
    return Precision::kKeep;
  if (t == "int8" || t == "8" || t == "w8") return Precision::kInt8;
  if (t == "int4" || t == "4" || t == "w4") return Precision::kInt4;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// LayerSet

Expected<LayerSet> parse_layer_set(std::string_view text) {
  const std::string_view t = trim(text);
  const std::string low = lower(t);
  if (low.empty()) return invalid_argument(fmt::format("empty layer set: {}", kLayerSetHelp));
  if (low == "all") return LayerSet::all();
  for (auto [word, kind] : {std::pair{std::string_view("first"), LayerSet::Kind::kFirst},
                            std::pair{std::string_view("last"), LayerSet::Kind::kLast},
                            std::pair{std::string_view("middle"), LayerSet::Kind::kMiddle}}) {
    if (low.size() > word.size() && low.compare(0, word.size(), word) == 0 && low[word.size()] == ':') {
      auto n = parse_int(std::string_view(low).substr(word.size() + 1));
      if (!n) return invalid_argument(fmt::format("bad layer set '{}': {} needs a count, as in {}:2", t, word, word));
      if (*n <= 0) return invalid_argument(fmt::format("layer set '{}' selects no layers (the count must be >= 1)", t));
      LayerSet s;
      s.kind = kind;
      s.count = *n;
      return s;
    }
  }
  std::vector<LayerSet::Range> ranges;
  for (std::string_view item : split(t, ',')) {
    std::string_view rest = trim(item);
    if (rest.empty()) return invalid_argument(fmt::format("bad layer set '{}': empty item; {}", t, kLayerSetHelp));
    auto a = take_index(rest);
    if (!a) return invalid_argument(fmt::format("bad layer set '{}': '{}' is not a layer index; {}", t, trim(item), kLayerSetHelp));
    int64_t b = *a;
    if (!rest.empty()) {
      if (rest.front() != '-')
        return invalid_argument(fmt::format("bad layer set '{}': '{}' is not a layer index or range; {}", t, trim(item), kLayerSetHelp));
      rest.remove_prefix(1);
      auto bb = take_index(rest);
      if (!bb || !rest.empty())
        return invalid_argument(fmt::format("bad layer set '{}': '{}' is not a range like 5-7; {}", t, trim(item), kLayerSetHelp));
      b = *bb;
      // Same-signed ends can be checked now; mixed ones ("2--1") only against a model.
      if ((*a >= 0) == (b >= 0) && *a > b)
        return invalid_argument(fmt::format("bad layer set '{}': range '{}' runs backwards", t, trim(item)));
    }
    ranges.push_back({*a, b});
  }
  return LayerSet::list(std::move(ranges));
}

Expected<std::vector<int64_t>> LayerSet::resolve(int64_t num_layers) const {
  std::vector<int64_t> out;
  auto too_many = [&](std::string_view word) {
    return invalid_argument(fmt::format("{}:{} asks for {} layers but the model has {}", word, count, count, num_layers));
  };
  switch (kind) {
    case Kind::kAll:
      for (int64_t i = 0; i < num_layers; ++i) out.push_back(i);
      return out;
    case Kind::kFirst:
    case Kind::kLast:
    case Kind::kMiddle: {
      const std::string_view word = kind == Kind::kFirst ? "first" : kind == Kind::kLast ? "last" : "middle";
      if (count <= 0) return invalid_argument(fmt::format("{}:{} selects no layers", word, count));
      if (count > num_layers) return too_many(word);
      const int64_t start = kind == Kind::kFirst ? 0 : kind == Kind::kLast ? num_layers - count : (num_layers - count) / 2;
      for (int64_t i = 0; i < count; ++i) out.push_back(start + i);
      return out;
    }
    case Kind::kList: {
      auto absolute = [&](int64_t i) { return i < 0 ? num_layers + i : i; };
      for (const Range& r : ranges) {
        for (int64_t end : {r.first, r.last}) {
          const int64_t a = absolute(end);
          if (a < 0 || a >= num_layers)
            return invalid_argument(fmt::format("layer {} is out of range: the model has {} layers ({})", end, num_layers,
                                                num_layers > 0 ? fmt::format("0-{}", num_layers - 1) : "none"));
        }
        const int64_t a = absolute(r.first), b = absolute(r.last);
        if (a > b)
          return invalid_argument(fmt::format("layer range {}-{} runs backwards (layers {} to {} of {})", r.first, r.last,
                                              a, b, num_layers));
        for (int64_t i = a; i <= b; ++i) out.push_back(i);
      }
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      return out;
    }
  }
  RTNQ_CHECK(false, "unhandled LayerSet kind");
  return out;
}

std::string LayerSet::to_string() const {
  switch (kind) {
    case Kind::kAll: return "all";
    case Kind::kFirst: return fmt::format("first:{}", count);
    case Kind::kLast: return fmt::format("last:{}", count);
    case Kind::kMiddle: return fmt::format("middle:{}", count);
    case Kind::kList: {
      std::string out;
      for (const Range& r : ranges) {
        if (!out.empty()) out += ',';
        out += r.first == r.last ? index_text(r.first) : index_text(r.first) + "-" + index_text(r.last);
      }
      return out;
    }
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// ModuleSet

Expected<ModuleSet> parse_module_set(std::string_view text) {
  using enum Module;
  static const std::map<std::string, ModuleSet, std::less<>> kNames = {
      {"q", ModuleSet::of({kQ})},          {"k", ModuleSet::of({kK})},
      {"v", ModuleSet::of({kV})},          {"o", ModuleSet::of({kO})},
      {"gate", ModuleSet::of({kGate})},    {"up", ModuleSet::of({kUp})},
      {"down", ModuleSet::of({kDown})},    {"q_proj", ModuleSet::of({kQ})},
      {"k_proj", ModuleSet::of({kK})},     {"v_proj", ModuleSet::of({kV})},
      {"o_proj", ModuleSet::of({kO})},     {"gate_proj", ModuleSet::of({kGate})},
      {"up_proj", ModuleSet::of({kUp})},   {"down_proj", ModuleSet::of({kDown})},
      {"qkv", ModuleSet::of({kQ, kK, kV})}, {"qkv_proj", ModuleSet::of({kQ, kK, kV})},
      {"attn", ModuleSet::of({kQ, kK, kV, kO})}, {"self_attn", ModuleSet::of({kQ, kK, kV, kO})},
      {"mlp", ModuleSet::of({kGate, kUp, kDown})}, {"gate_up", ModuleSet::of({kGate, kUp})},
      {"gate_up_proj", ModuleSet::of({kGate, kUp})}, {"all", ModuleSet::all()},
  };
  const std::string_view t = trim(text);
  if (t.empty()) return invalid_argument(fmt::format("empty module set: {}", kModuleSetHelp));
  ModuleSet out;
  for (std::string_view item : split(t, ',')) {
    const std::string name = lower(trim(item));
    if (name.empty()) return invalid_argument(fmt::format("bad module set '{}': empty item; {}", t, kModuleSetHelp));
    if (name == "embed" || name == "embed_tokens" || name == "embeddings" || name == "embedding")
      return invalid_argument(fmt::format("bad module set '{}': embeddings are always kept at original precision; "
                                          "a plan cannot quantize embed_tokens", t));
    if (name == "lm_head")
      return invalid_argument(fmt::format("bad module set '{}': lm_head is not a layer module; set it with --lm-head "
                                          "or an [lm_head] table in a plan file", t));
    auto it = kNames.find(name);
    if (it == kNames.end()) return invalid_argument(fmt::format("bad module set '{}': unknown module '{}'; {}", t, name, kModuleSetHelp));
    out.mask = uint8_t(out.mask | it->second.mask);
  }
  return out;
}

std::string ModuleSet::to_string() const {
  using enum Module;
  if (*this == ModuleSet::all()) return "all";
  if (empty()) return "none";
  std::vector<std::string> parts;
  uint8_t left = mask;
  auto take = [&](ModuleSet group, std::string_view name) {
    if ((left & group.mask) == group.mask) {
      parts.emplace_back(name);
      left = uint8_t(left & ~group.mask);
    }
  };
  take(ModuleSet::of({kQ, kK, kV, kO}), "attn");
  take(ModuleSet::of({kQ, kK, kV}), "qkv");
  for (Module m : {kQ, kK, kV, kO})
    if (left & (1u << unsigned(m))) take(ModuleSet::of({m}), module_name(m));
  take(ModuleSet::of({kGate, kUp, kDown}), "mlp");
  take(ModuleSet::of({kGate, kUp}), "gate_up");
  for (Module m : {kGate, kUp, kDown})
    if (left & (1u << unsigned(m))) take(ModuleSet::of({m}), module_name(m));
  std::string out;
  for (const auto& p : parts) {
    out += out.empty() ? "" : ",";
    out += p;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The CLI rule grammar LAYERS[:MODULES][@GROUP]

Expected<PlanRule> parse_rule_selector(std::string_view selector, Precision precision, std::string origin) {
  auto fail = [&](const std::string& why) { return invalid_argument(fmt::format("{}: {}", origin, why)); };
  std::string_view body = trim(selector);
  PlanRule rule;
  rule.spec = QuantSpec{precision, kBaseGroup};
  if (size_t at = body.rfind('@'); at != std::string_view::npos) {
    const std::string_view gtext = trim(body.substr(at + 1));
    body = trim(body.substr(0, at));
    if (precision == Precision::kKeep) return fail("a kept module has no group size; drop the '@" + std::string(gtext) + "'");
    auto g = parse_int(gtext);
    if (!g || !is_valid_group_size(*g))
      return fail(fmt::format("bad group size '@{}': expected -1 (per channel) or a power of two >= 8 (32, 64, 128, ...)", gtext));
    rule.spec.group_size = *g;
  }
  if (body.empty()) return fail("empty selector; expected LAYERS[:MODULES][@GROUP], e.g. first:2, last:2:mlp, 0-3:down");
  std::vector<std::string_view> parts = split(body, ':');
  std::string layer_text(trim(parts[0]));
  size_t next = 1;
  const std::string head = lower(layer_text);
  if (head == "first" || head == "last" || head == "middle") {
    if (parts.size() < 2) return fail(fmt::format("'{}' needs a count, as in {}:2", layer_text, head));
    layer_text += ':';
    layer_text += trim(parts[1]);
    next = 2;
  }
  if (parts.size() > next + 1)
    return fail(fmt::format("too many ':' in '{}'; expected LAYERS[:MODULES][@GROUP], e.g. last:2:mlp or 0-3:down", body));
  auto layers = parse_layer_set(layer_text);
  if (!layers) return fail(layers.status().message());
  rule.layers = std::move(*layers);
  if (parts.size() == next + 1) {
    auto modules = parse_module_set(parts[next]);
    if (!modules) return fail(modules.status().message());
    rule.modules = *modules;
  }
  rule.origin = std::move(origin);
  return rule;
}

// ---------------------------------------------------------------------------------------------
// Resolution

namespace {

// Kept cells compare equal whatever group they were given.
QuantSpec normalized(QuantSpec s) { return s.precision == Precision::kKeep ? QuantSpec{} : s; }

// The largest power of two in [8, below) dividing n, or 0.
int64_t largest_dividing_group(int64_t n, int64_t below) {
  for (int64_t g = below / 2; g >= 8; g /= 2)
    if (n % g == 0) return g;
  return 0;
}

// Problems of one kind across many cells, merged so that a 30-layer model gives one line, not 150.
class ProblemList {
 public:
  void add(const std::string& key, int64_t layer, Module m) {
    auto it = std::find_if(items_.begin(), items_.end(), [&](const Item& i) { return i.key == key; });
    if (it == items_.end()) {
      items_.push_back({key, {}, {}});
      it = items_.end() - 1;
    }
    if (it->layers.empty() || it->layers.back() != layer) it->layers.push_back(layer);
    it->modules.mask = uint8_t(it->modules.mask | (1u << unsigned(m)));
  }
  struct Item {
    std::string key;
    std::vector<int64_t> layers;
    ModuleSet modules;
  };
  const std::vector<Item>& items() const { return items_; }

 private:
  std::vector<Item> items_;
};

std::string module_list(ModuleSet s) {
  std::string out;
  for (int i = 0; i < kNumModules; ++i)
    if (s.contains(Module(i))) {
      out += out.empty() ? "" : ", ";
      out += std::string(module_name(Module(i)));
    }
  return out;
}

std::string layers_label(const std::vector<int64_t>& layers) {
  return fmt::format("{} {}", layers.size() == 1 ? "layer" : "layers", format_layer_list(layers));
}

}  // namespace

Expected<PlanTable> resolve_plan(const Plan& plan, const ModelSpec& spec) {
  const int64_t n_layers = spec.num_layers;
  if (n_layers <= 0) return invalid_argument("the model has no decoder layers to plan for");
  if (!is_valid_group_size(plan.base.group_size))
    return invalid_argument(fmt::format("base group size {}: expected -1 (per channel) or a power of two >= 8 (32, 64, 128, ...)",
                                        plan.base.group_size));
  const QuantSpec base = normalized(plan.base);
  const std::string base_origin = fmt::format("the base {}", format_quant_spec(base));

  PlanTable table;
  std::array<QuantSpec, kNumModules> base_row;
  base_row.fill(base);
  table.layers.assign(size_t(n_layers), base_row);
  // Which rule last set each cell (-1: the base), so that errors can name who is responsible.
  std::array<int, kNumModules> base_owner;
  base_owner.fill(-1);
  std::vector<std::array<int, kNumModules>> owner(size_t(n_layers), base_owner);

  auto origin_of = [&](size_t i) {
    const PlanRule& r = plan.rules[i];
    return r.origin.empty() ? fmt::format("rule {}", i + 1) : r.origin;
  };
  for (size_t i = 0; i < plan.rules.size(); ++i) {
    const PlanRule& rule = plan.rules[i];
    QuantSpec s = rule.spec;
    if (s.group_size == kBaseGroup) s.group_size = plan.base.group_size;
    if (s.precision != Precision::kKeep && !is_valid_group_size(s.group_size))
      return invalid_argument(fmt::format("{}: group size {}: expected -1 (per channel) or a power of two >= 8", origin_of(i),
                                          s.group_size));
    s = normalized(s);
    if (rule.modules.empty()) return invalid_argument(fmt::format("{}: selects no modules (a typo?)", origin_of(i)));
    auto layers = rule.layers.resolve(n_layers);
    if (!layers) return layers.status().with_context(origin_of(i));
    if (layers->empty()) return invalid_argument(fmt::format("{}: selects no layers (a typo?)", origin_of(i)));
    for (int64_t l : *layers)
      for (int m = 0; m < kNumModules; ++m)
        if (rule.modules.contains(Module(m))) {
          table.layers[size_t(l)][size_t(m)] = s;
          owner[size_t(l)][size_t(m)] = int(i);
        }
  }
  auto cell_origin = [&](int64_t l, Module m) {
    const int o = owner[size_t(l)][size_t(m)];
    return o < 0 ? base_origin : origin_of(size_t(o));
  };

  // vLLM loads q/k/v into one qkv_proj and gate/up into one gate_up_proj: one spec per fused group.
  ProblemList fused;
  for (int64_t l = 0; l < n_layers; ++l) {
    for (auto [lead, others, fused_name] :
         {std::tuple{Module::kQ, std::vector{Module::kK, Module::kV}, "q, k and v into qkv_proj"},
          std::tuple{Module::kGate, std::vector{Module::kUp}, "gate and up into gate_up_proj"}}) {
      for (Module m : others) {
        if (table.at(l, m) == table.at(l, lead)) continue;
        fused.add(fmt::format("{} is {} ({}) but {} is {} ({}); vLLM fuses {}, so they need one precision and group "
                              "(select them together: modules \"{}\")",
                              module_name(lead), format_quant_spec(table.at(l, lead)), cell_origin(l, lead),
                              module_name(m), format_quant_spec(table.at(l, m)), cell_origin(l, m), fused_name,
                              lead == Module::kQ ? "qkv" : "gate_up"),
                  l, m);
        break;
      }
    }
  }

  ProblemList shape;
  for (int64_t l = 0; l < n_layers; ++l) {
    for (int mi = 0; mi < kNumModules; ++mi) {
      const Module m = Module(mi);
      const QuantSpec& s = table.at(l, m);
      if (s.precision == Precision::kKeep) continue;
      const int64_t in = module_shape(spec, m).second;
      const int bits = precision_bits(s.precision);
      const bool from_base = owner[size_t(l)][size_t(mi)] < 0;
      if (s.group_size != kPerChannel && in % s.group_size != 0) {
        const int64_t g = largest_dividing_group(in, s.group_size);
        if (g == 0 && in * bits % 32 != 0) {
          // Neither a smaller group nor per-channel can help this precision: say so rather than
          // suggesting -1 and failing on packing next.
          shape.add(fmt::format("in_features {} is not a multiple of group {} (from {}) and cannot be packed as {} "
                                "at all ({} values per int32); keep {{them}}{}",
                                in, s.group_size, cell_origin(l, m), precision_name(s.precision), 32 / bits,
                                s.precision == Precision::kInt4 && in % 4 == 0 ? " or use int8 with group -1" : ""),
                    l, m);
          continue;
        }
        const std::string alternatives = g ? fmt::format("{}/-1", g) : std::string("-1");
        shape.add(fmt::format("in_features {} is not a multiple of group {} (from {}); keep {{them}}, {}, or a rule "
                              "giving {{them}} a group that divides {}",
                              in, s.group_size, cell_origin(l, m),
                              from_base ? fmt::format("use --group-size {}", alternatives)
                                        : fmt::format("give that rule group {}", alternatives),
                              in),
                  l, m);
      } else if (in * bits % 32 != 0) {
        shape.add(fmt::format("in_features {} cannot be packed as {} ({} values per int32 need a multiple of {}; from {}); "
                              "keep {{them}}{}",
                              in, precision_name(s.precision), 32 / bits, 32 / bits, cell_origin(l, m),
                              s.precision == Precision::kInt4 && in % 4 == 0 ? " or use int8" : ""),
                  l, m);
      }
    }
  }

  std::vector<std::string> problems;
  for (const auto& item : fused.items()) problems.push_back(fmt::format("{}: {}", layers_label(item.layers), item.key));
  // Shape problems: cells with the same reason and the same layers are reported as one module list.
  std::vector<std::tuple<std::string, std::vector<int64_t>, ModuleSet>> merged;
  for (const auto& item : shape.items()) {
    auto it = std::find_if(merged.begin(), merged.end(), [&](const auto& e) {
      return std::get<0>(e) == item.key && std::get<1>(e) == item.layers;
    });
    if (it == merged.end()) merged.emplace_back(item.key, item.layers, item.modules);
    else std::get<2>(*it).mask = uint8_t(std::get<2>(*it).mask | item.modules.mask);
  }
  for (const auto& [key, layers, modules] : merged) {
    const bool plural = layers.size() > 1 || module_list(modules).find(',') != std::string::npos;
    std::string text = key;
    for (size_t pos; (pos = text.find("{them}")) != std::string::npos;) text.replace(pos, 6, plural ? "them" : "it");
    problems.push_back(fmt::format("{} {}: {}", layers_label(layers), module_list(modules), text));
  }

  // lm_head: in_features is hidden_size.
  if (plan.lm_head && plan.lm_head->precision != Precision::kKeep) {
    QuantSpec s = *plan.lm_head;
    if (s.group_size == kBaseGroup) s.group_size = plan.base.group_size;
    const std::string label = format_quant_spec(s);
    if (spec.tie_word_embeddings) {
      problems.push_back(fmt::format("lm_head {}: this model ties lm_head to embed_tokens (tie_word_embeddings) and "
                                     "embeddings are always kept, so lm_head must be kept too",
                                     label));
    } else if (!is_valid_group_size(s.group_size)) {
      problems.push_back(fmt::format("lm_head group size {}: expected -1 (per channel) or a power of two >= 8", s.group_size));
    } else if (s.group_size != kPerChannel && spec.hidden_size % s.group_size != 0) {
      const int64_t g = largest_dividing_group(spec.hidden_size, s.group_size);
      problems.push_back(fmt::format("lm_head {}: in_features {} is not a multiple of group {}; keep it or use group {}",
                                     label, spec.hidden_size, s.group_size, g ? fmt::format("{} or -1", g) : "-1"));
    } else if (spec.hidden_size * precision_bits(s.precision) % 32 != 0) {
      problems.push_back(fmt::format("lm_head {}: in_features {} cannot be packed into int32 words; keep it", label,
                                     spec.hidden_size));
    } else {
      table.lm_head = s;
    }
  }

  if (problems.size() == 1) return invalid_argument(problems.front());
  if (!problems.empty()) {
    std::string msg = fmt::format("the plan does not fit this model ({} problems):", problems.size());
    for (const auto& p : problems) msg += "\n  - " + p;
    return invalid_argument(msg);
  }
  return table;
}

std::vector<std::pair<int64_t, int64_t>> compact_layer_runs(const PlanTable& table) {
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t l = 0; l < int64_t(table.layers.size()); ++l) {
    if (!runs.empty() && table.layers[size_t(l)] == table.layers[size_t(runs.back().second)]) runs.back().second = l;
    else runs.emplace_back(l, l);
  }
  return runs;
}

}  // namespace rtnq
