// ModelSpec <-> Hugging Face config.json, spec validation, and the canonical module names.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "rtnq/model.h"

namespace rtnq {

using json = nlohmann::json;

std::string_view source_format_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::kHfFolder: return "hf-safetensors";
    case SourceFormat::kGguf: return "gguf";
    case SourceFormat::kLlama2c: return "llama2c";
  }
  return "unknown";
}

namespace {

// The architectures we run: HF class name, model_type, and the HF config class defaults that a
// config.json may leave out (they differ per class, so a missing key must be read with the right one).
struct ArchRow {
  std::string_view architecture;
  std::string_view model_type;
  int64_t max_position_embeddings;
  double rope_theta;
  bool always_qkv_bias;
};
constexpr ArchRow kArchs[] = {
    {"LlamaForCausalLM", "llama", 2048, 10000.0, false},
    {"MistralForCausalLM", "mistral", 4096 * 32, 10000.0, false},
    {"Qwen2ForCausalLM", "qwen2", 32768, 10000.0, true},
};

const ArchRow* arch_by_class(std::string_view a) {
  for (const auto& r : kArchs)
    if (r.architecture == a) return &r;
  return nullptr;
}
const ArchRow* arch_by_type(std::string_view t) {
  for (const auto& r : kArchs)
    if (r.model_type == t) return &r;
  return nullptr;
}

// Field readers: a missing key (or null) gives nullopt; a present key of the wrong type is an error
// naming the key and what it holds, so a typo'd config never silently falls back to a default.
Status type_error(const std::string& key, const char* expected, const json& v) {
  return invalid_argument(fmt::format("config field '{}': expected {}, got {}", key, expected, v.dump()));
}

Expected<std::optional<int64_t>> get_int(const json& c, const std::string& key) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      return type_error(key, "an integer that fits 64 bits", *it);
    return std::optional<int64_t>(it->get<int64_t>());
  }
  // Some exporters write whole numbers as floats (4096.0); accept those, nothing fractional.
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return std::optional<int64_t>(int64_t(d));
  }
  return type_error(key, "an integer", *it);
}

Expected<std::optional<double>> get_double(const json& c, const std::string& key) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return std::optional<double>();
  if (!it->is_number()) return type_error(key, "a number", *it);
  return std::optional<double>(it->get<double>());
}

Expected<std::optional<bool>> get_bool(const json& c, const std::string& key) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return type_error(key, "true or false", *it);
  return std::optional<bool>(it->get<bool>());
}

Expected<std::optional<std::string>> get_string(const json& c, const std::string& key) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return type_error(key, "a string", *it);
  return std::optional<std::string>(it->get<std::string>());
}

Expected<int64_t> require_int(const json& c, const std::string& key) {
  RTNQ_ASSIGN_OR_RETURN(auto v, get_int(c, key));
  if (!v) return invalid_argument(fmt::format("config is missing required integer field '{}'", key));
  return *v;
}

Expected<RopeScaling> parse_rope_scaling(const json& rs) {
  RopeScaling out;
  if (rs.is_null()) return out;
  if (!rs.is_object()) return type_error("rope_scaling", "an object or null", rs);
  RTNQ_ASSIGN_OR_RETURN(auto rope_type, get_string(rs, "rope_type"));
  if (!rope_type) {
    RTNQ_ASSIGN_OR_RETURN(rope_type, get_string(rs, "type"));  // older spelling
  }
  const std::string t = rope_type.value_or("default");
  RTNQ_ASSIGN_OR_RETURN(auto factor, get_double(rs, "factor"));
  if (t == "default") return out;
  if (t == "linear") {
    if (!factor) return invalid_argument("config field 'rope_scaling': linear scaling needs 'factor'");
    out.type = RopeScaling::Type::kLinear;
    out.factor = *factor;
    return out;
  }
  if (t == "llama3") {
    if (!factor) return invalid_argument("config field 'rope_scaling': llama3 scaling needs 'factor'");
    out.type = RopeScaling::Type::kLlama3;
    out.factor = *factor;
    RTNQ_ASSIGN_OR_RETURN(auto lo, get_double(rs, "low_freq_factor"));
    RTNQ_ASSIGN_OR_RETURN(auto hi, get_double(rs, "high_freq_factor"));
    RTNQ_ASSIGN_OR_RETURN(auto orig, get_int(rs, "original_max_position_embeddings"));
    if (lo) out.low_freq_factor = *lo;
    if (hi) out.high_freq_factor = *hi;
    if (orig) out.original_max_position_embeddings = *orig;
    return out;
  }
  return unsupported(fmt::format("rope_scaling type '{}' is not supported (supported: default, linear, llama3)", t));
}

json rope_scaling_to_json(const RopeScaling& rs) {
  switch (rs.type) {
    case RopeScaling::Type::kNone: return nullptr;
    case RopeScaling::Type::kLinear: return {{"rope_type", "linear"}, {"factor", rs.factor}};
    case RopeScaling::Type::kLlama3:
      return {{"rope_type", "llama3"},
              {"factor", rs.factor},
              {"low_freq_factor", rs.low_freq_factor},
              {"high_freq_factor", rs.high_freq_factor},
              {"original_max_position_embeddings", rs.original_max_position_embeddings}};
  }
  return nullptr;
}

}  // namespace

Status validate_spec(const ModelSpec& spec) {
  auto bad = [](std::string m) { return invalid_argument("model spec: " + std::move(m)); };
  const ArchRow* arch = arch_by_class(spec.architecture);
  if (!arch) return unsupported(fmt::format("model spec: architecture '{}' is not supported", spec.architecture));
  if (arch->model_type != spec.model_type)
    return bad(fmt::format("model_type '{}' does not match architecture {} (expected '{}')", spec.model_type,
                           spec.architecture, arch->model_type));
  const std::pair<const char*, int64_t> positives[] = {
      {"hidden_size", spec.hidden_size},       {"intermediate_size", spec.intermediate_size},
      {"num_hidden_layers", spec.num_layers},  {"num_attention_heads", spec.num_heads},
      {"num_key_value_heads", spec.num_kv_heads}, {"head_dim", spec.head_dim},
      {"vocab_size", spec.vocab_size},         {"max_position_embeddings", spec.max_position_embeddings},
  };
  for (const auto& [name, v] : positives)
    if (v <= 0) return bad(fmt::format("{} must be positive, got {}", name, v));
  if (spec.num_heads % spec.num_kv_heads != 0)
    return bad(fmt::format("num_attention_heads {} is not a multiple of num_key_value_heads {}", spec.num_heads,
                           spec.num_kv_heads));
  // Rotary pairs split a head in two halves.
  if (spec.head_dim % 2 != 0) return bad(fmt::format("head_dim {} must be even for rotary embeddings", spec.head_dim));
  if (!(spec.rms_norm_eps > 0) || !std::isfinite(spec.rms_norm_eps))
    return bad(fmt::format("rms_norm_eps must be a positive number, got {}", spec.rms_norm_eps));
  if (!(spec.rope_theta > 0) || !std::isfinite(spec.rope_theta))
    return bad(fmt::format("rope_theta must be a positive number, got {}", spec.rope_theta));
  const RopeScaling& rs = spec.rope_scaling;
  if (rs.type != RopeScaling::Type::kNone && (!(rs.factor > 0) || !std::isfinite(rs.factor)))
    return bad(fmt::format("rope_scaling factor must be positive, got {}", rs.factor));
  if (rs.type == RopeScaling::Type::kLlama3) {
    if (!(rs.low_freq_factor > 0) || !(rs.high_freq_factor > rs.low_freq_factor))
      return bad(fmt::format("llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor, got {} and {}",
                             rs.low_freq_factor, rs.high_freq_factor));
    if (rs.original_max_position_embeddings <= 0)
      return bad(fmt::format("llama3 rope_scaling original_max_position_embeddings must be positive, got {}",
                             rs.original_max_position_embeddings));
  }
  // Qwen2 attention always has q/k/v biases and Mistral's never does; a spec that disagrees could not
  // be written back as a config.json that transformers or vLLM would read the same way.
  if (spec.model_type == "qwen2" && !spec.attention_bias)
    return bad("attention_bias must be true for qwen2 (its q/k/v projections always have biases)");
  if (spec.model_type == "mistral" && spec.attention_bias)
    return bad("attention_bias is not available for mistral (MistralForCausalLM has no q/k/v biases)");
  if (spec.model_type == "llama" && spec.sliding_window)
    return bad("sliding_window is not available for llama");
  if (spec.sliding_window && *spec.sliding_window <= 0)
    return bad(fmt::format("sliding_window must be positive, got {}", *spec.sliding_window));
  if (spec.bos_token_id >= spec.vocab_size || spec.bos_token_id < -1)
    return bad(fmt::format("bos_token_id {} is outside the vocabulary of {}", spec.bos_token_id, spec.vocab_size));
  for (int64_t e : spec.eos_token_ids)
    if (e < 0 || e >= spec.vocab_size)
      return bad(fmt::format("eos_token_id {} is outside the vocabulary of {}", e, spec.vocab_size));
  if (!is_float(spec.torch_dtype))
    return bad(fmt::format("torch_dtype must be a floating-point type, got {}", dtype_torch_name(spec.torch_dtype)));
  return Status::ok();
}

Expected<ModelSpec> spec_from_hf_config(const json& c) {
  if (!c.is_object()) return invalid_argument(fmt::format("config must be a JSON object, got {}", c.type_name()));
  ModelSpec s;
  s.hf_config = c;

  // Which architecture: the class name decides; model_type alone is enough for older configs.
  RTNQ_ASSIGN_OR_RETURN(auto model_type, get_string(c, "model_type"));
  const ArchRow* arch = nullptr;
  auto archs = c.find("architectures");
  if (archs != c.end() && !archs->is_null()) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      return type_error("architectures", "a non-empty list of class names", *archs);
    const std::string a = (*archs)[0].get<std::string>();
    arch = arch_by_class(a);
    if (!arch)
      return unsupported(fmt::format("architecture '{}' is not supported (supported: LlamaForCausalLM, "
                                     "MistralForCausalLM, Qwen2ForCausalLM)", a));
    if (model_type && *model_type != arch->model_type)
      return invalid_argument(fmt::format("config says architecture {} but model_type '{}' (expected '{}')", a,
                                          *model_type, arch->model_type));
  } else if (model_type) {
    arch = arch_by_type(*model_type);
    if (!arch)
      return unsupported(
          fmt::format("model_type '{}' is not supported (supported: llama, mistral, qwen2)", *model_type));
  } else {
    return invalid_argument("config has neither 'architectures' nor 'model_type'");
  }
  s.architecture = std::string(arch->architecture);
  s.model_type = std::string(arch->model_type);

  // Only SiLU-gated MLPs without MLP biases are modelled; refuse the variants instead of running them wrong.
  RTNQ_ASSIGN_OR_RETURN(auto act, get_string(c, "hidden_act"));
  if (act && *act != "silu" && *act != "swish")
    return unsupported(fmt::format("hidden_act '{}' is not supported (only silu)", *act));
  RTNQ_ASSIGN_OR_RETURN(auto mlp_bias, get_bool(c, "mlp_bias"));
  if (mlp_bias.value_or(false)) return unsupported("mlp_bias = true is not supported");

  RTNQ_ASSIGN_OR_RETURN(s.hidden_size, require_int(c, "hidden_size"));
  RTNQ_ASSIGN_OR_RETURN(s.intermediate_size, require_int(c, "intermediate_size"));
  RTNQ_ASSIGN_OR_RETURN(s.num_layers, require_int(c, "num_hidden_layers"));
  RTNQ_ASSIGN_OR_RETURN(s.num_heads, require_int(c, "num_attention_heads"));
  RTNQ_ASSIGN_OR_RETURN(s.vocab_size, require_int(c, "vocab_size"));
  RTNQ_ASSIGN_OR_RETURN(auto kv, get_int(c, "num_key_value_heads"));
  s.num_kv_heads = kv.value_or(s.num_heads);
  RTNQ_ASSIGN_OR_RETURN(auto head_dim, get_int(c, "head_dim"));
  if (head_dim) {
    s.head_dim = *head_dim;
  } else {
    if (s.num_heads <= 0 || s.hidden_size % s.num_heads != 0)
      return invalid_argument(fmt::format("config has no head_dim and hidden_size {} is not a multiple of "
                                          "num_attention_heads {}", s.hidden_size, s.num_heads));
    s.head_dim = s.hidden_size / s.num_heads;
  }
  RTNQ_ASSIGN_OR_RETURN(auto max_pos, get_int(c, "max_position_embeddings"));
  s.max_position_embeddings = max_pos.value_or(arch->max_position_embeddings);
  RTNQ_ASSIGN_OR_RETURN(auto eps, get_double(c, "rms_norm_eps"));
  s.rms_norm_eps = eps.value_or(1e-6);  // the default of all three HF config classes

  // Rotary parameters: top-level rope_theta / rope_scaling, or (newer transformers) one
  // rope_parameters object holding both.
  json rope_scaling = nullptr;
  if (auto it = c.find("rope_scaling"); it != c.end()) rope_scaling = *it;
  RTNQ_ASSIGN_OR_RETURN(auto theta, get_double(c, "rope_theta"));
  if (auto rp = c.find("rope_parameters"); rp != c.end() && rp->is_object()) {
    if (!theta) {
      RTNQ_ASSIGN_OR_RETURN(theta, get_double(*rp, "rope_theta"));
    }
    if (rope_scaling.is_null()) rope_scaling = *rp;
  }
  s.rope_theta = theta.value_or(arch->rope_theta);
  RTNQ_ASSIGN_OR_RETURN(s.rope_scaling, parse_rope_scaling(rope_scaling));

  RTNQ_ASSIGN_OR_RETURN(auto bias, get_bool(c, "attention_bias"));
  s.attention_bias = arch->always_qkv_bias || bias.value_or(false);
  RTNQ_ASSIGN_OR_RETURN(auto tie, get_bool(c, "tie_word_embeddings"));
  s.tie_word_embeddings = tie.value_or(false);

  RTNQ_ASSIGN_OR_RETURN(auto window, get_int(c, "sliding_window"));
  if (s.model_type == "mistral") {
    s.sliding_window = window;
  } else if (s.model_type == "qwen2") {
    // Qwen2 configs carry a sliding_window that only applies when use_sliding_window is set.
    RTNQ_ASSIGN_OR_RETURN(auto use, get_bool(c, "use_sliding_window"));
    if (use.value_or(false)) s.sliding_window = window;
  }

  RTNQ_ASSIGN_OR_RETURN(auto bos, get_int(c, "bos_token_id"));
  s.bos_token_id = bos.value_or(-1);
  if (auto eos = c.find("eos_token_id"); eos != c.end() && !eos->is_null()) {
    if (eos->is_number_integer()) {
      s.eos_token_ids.push_back(eos->get<int64_t>());
    } else if (eos->is_array()) {
      for (const json& e : *eos) {
        if (!e.is_number_integer()) return type_error("eos_token_id", "an integer or a list of integers", *eos);
        s.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      return type_error("eos_token_id", "an integer or a list of integers", *eos);
    }
  }

  RTNQ_ASSIGN_OR_RETURN(auto dtype_str, get_string(c, "torch_dtype"));
  if (!dtype_str) {
    RTNQ_ASSIGN_OR_RETURN(dtype_str, get_string(c, "dtype"));
  }
  if (dtype_str) {
    auto d = dtype_from_torch_name(*dtype_str);
    if (!d || !is_float(*d))
      return unsupported(fmt::format("config torch_dtype '{}' is not a supported float type", *dtype_str));
    s.torch_dtype = *d;
  }

  RTNQ_RETURN_IF_ERROR(validate_spec(s));
  return s;
}

json spec_to_hf_config(const ModelSpec& s) {
  json c = s.hf_config.is_object() ? s.hf_config : json::object();
  c["architectures"] = json::array({s.architecture});
  c["model_type"] = s.model_type;
  c["hidden_size"] = s.hidden_size;
  c["intermediate_size"] = s.intermediate_size;
  c["num_hidden_layers"] = s.num_layers;
  c["num_attention_heads"] = s.num_heads;
  c["num_key_value_heads"] = s.num_kv_heads;
  c["head_dim"] = s.head_dim;
  c["vocab_size"] = s.vocab_size;
  c["max_position_embeddings"] = s.max_position_embeddings;
  c["rms_norm_eps"] = s.rms_norm_eps;
  c["rope_theta"] = s.rope_theta;
  c["rope_scaling"] = rope_scaling_to_json(s.rope_scaling);
  if (auto rp = c.find("rope_parameters"); rp != c.end()) {
    // Keep the newer spelling consistent with what we model rather than leave two disagreeing copies.
    json p = rope_scaling_to_json(s.rope_scaling);
    if (p.is_null()) p = {{"rope_type", "default"}};
    p["rope_theta"] = s.rope_theta;
    *rp = p;
  }
  c["tie_word_embeddings"] = s.tie_word_embeddings;
  c["bos_token_id"] = s.bos_token_id >= 0 ? json(s.bos_token_id) : json(nullptr);
  if (s.eos_token_ids.empty()) {
    c["eos_token_id"] = nullptr;
  } else if (s.eos_token_ids.size() == 1) {
    c["eos_token_id"] = s.eos_token_ids[0];
  } else {
    c["eos_token_id"] = s.eos_token_ids;
  }
  const std::string dtype(dtype_torch_name(s.torch_dtype));
  c["torch_dtype"] = dtype;
  if (c.contains("dtype")) c["dtype"] = dtype;
  // Fields the config classes need that a spec built from GGUF or llama2.c has no source for.
  if (!c.contains("hidden_act")) c["hidden_act"] = "silu";
  if (!c.contains("initializer_range")) c["initializer_range"] = 0.02;
  if (!c.contains("use_cache")) c["use_cache"] = true;
  if (!c.contains("attention_dropout")) c["attention_dropout"] = 0.0;
  if (s.model_type == "llama") {
    c["attention_bias"] = s.attention_bias;
    c["mlp_bias"] = false;
    if (!c.contains("pretraining_tp")) c["pretraining_tp"] = 1;
  } else if (s.model_type == "mistral") {
    c["sliding_window"] = s.sliding_window ? json(*s.sliding_window) : json(nullptr);
  } else if (s.model_type == "qwen2") {
    c["use_sliding_window"] = s.sliding_window.has_value();
    if (s.sliding_window) {
      c["sliding_window"] = *s.sliding_window;
    } else if (!c.contains("sliding_window")) {
      c["sliding_window"] = nullptr;
    }
    if (!c.contains("max_window_layers")) c["max_window_layers"] = s.num_layers;
  }
  return c;
}

std::string_view module_name(Module m) {
  switch (m) {
    case Module::kQ: return "q";
    case Module::kK: return "k";
    case Module::kV: return "v";
    case Module::kO: return "o";
    case Module::kGate: return "gate";
    case Module::kUp: return "up";
    case Module::kDown: return "down";
  }
  return "?";
}

std::optional<Module> module_from_name(std::string_view name) {
  for (int i = 0; i < kNumModules; ++i)
    if (module_name(Module(i)) == name) return Module(i);
  return std::nullopt;
}

std::string module_hf_prefix(int64_t layer, Module m) {
  const bool attn = m == Module::kQ || m == Module::kK || m == Module::kV || m == Module::kO;
  return fmt::format("model.layers.{}.{}.{}_proj", layer, attn ? "self_attn" : "mlp", module_name(m));
}

std::pair<int64_t, int64_t> module_shape(const ModelSpec& s, Module m) {
  switch (m) {
    case Module::kQ: return {s.num_heads * s.head_dim, s.hidden_size};
    case Module::kK:
    case Module::kV: return {s.num_kv_heads * s.head_dim, s.hidden_size};
    case Module::kO: return {s.hidden_size, s.num_heads * s.head_dim};
    case Module::kGate:
    case Module::kUp: return {s.intermediate_size, s.hidden_size};
    case Module::kDown: return {s.hidden_size, s.intermediate_size};
  }
  return {0, 0};
}

bool WeightSource::contains(const std::string& name) const { return find(name) != nullptr; }

const TensorInfo* WeightSource::find(const std::string& name) const {
  for (const TensorInfo& t : tensors())
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace rtnq
