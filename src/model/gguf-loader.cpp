// GGUF -> LoadedModel: spec from `<arch>.*` metadata, tensors renamed to Hugging Face names and
// shapes, block formats dequantized on demand, and (arch llama) q/k rows un-permuted from the
// interleaved rotary layout llama.cpp's converter wrote back to HF's half-split layout. qwen2 GGUFs
// are converted without that permutation, so their rows are served as stored.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <numbers>
#include <string>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/gguf-dequant.h"
#include "io/gguf.h"
#include "model/loaders.h"

namespace rtnq {
namespace {

constexpr int64_t kMaxDim = int64_t{1} << 24;  // sanity bound on any size read from metadata

// ---------------------------------------------------------------------------------------------
// Names

struct LayerName {
  std::string_view gguf;  // suffix after "blk.N."
  std::string_view hf;    // suffix after "model.layers.N."
};
constexpr LayerName kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

struct MappedName {
  std::string hf;
  int64_t layer = -1;         // -1: not a layer tensor
  std::string_view suffix;    // GGUF suffix for layer tensors
};

// HF name of a GGUF tensor, or nullopt for tensors we do not serve (rope_freqs, unknown extras).
std::optional<MappedName> map_name(std::string_view g) {
  if (g == "token_embd.weight") return MappedName{"model.embed_tokens.weight", -1, {}};
  if (g == "output_norm.weight") return MappedName{"model.norm.weight", -1, {}};
  if (g == "output.weight") return MappedName{"lm_head.weight", -1, {}};
  if (!g.starts_with("blk.")) return std::nullopt;
  const size_t dot = g.find('.', 4);
  if (dot == std::string_view::npos || dot == 4 || dot - 4 > 7) return std::nullopt;
  int64_t layer = 0;
  for (size_t k = 4; k < dot; ++k) {
    if (g[k] < '0' || g[k] > '9') return std::nullopt;
    layer = layer * 10 + (g[k] - '0');
  }
  const std::string_view suffix = g.substr(dot + 1);
  for (const auto& n : kLayerNames)
    if (n.gguf == suffix) return MappedName{fmt::format("model.layers.{}.{}", layer, n.hf), layer, n.gguf};
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Weight source

struct Served {
  const GgufTensorInfo* src = nullptr;
  TensorInfo info;             // HF name, served dtype, HF shape
  int64_t permute_heads = 0;   // > 0: un-permute rows interleaved -> half-split over this many heads
  int64_t head_dim = 0;
};

std::optional<DType> plain_float_dtype(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: return DType::kF32;
    case GgmlType::kF16: return DType::kF16;
    case GgmlType::kBF16: return DType::kBF16;
    default: return std::nullopt;
  }
}

class GgufWeightSource final : public WeightSource {
 public:
  GgufWeightSource(std::shared_ptr<const GgufFile> file, std::vector<Served> served)
      : file_(std::move(file)), served_(std::move(served)) {
    infos_.reserve(served_.size());
    for (size_t k = 0; k < served_.size(); ++k) {
      infos_.push_back(served_[k].info);
      index_.emplace(served_[k].info.name, k);
    }
  }

  const std::vector<TensorInfo>& tensors() const override { return infos_; }

  Expected<TensorView> get(const std::string& name) const override {
    auto it = index_.find(name);
    if (it == index_.end()) return not_found(fmt::format("{}: no tensor '{}'", file_->path().string(), name));
    const Served& s = served_[it->second];
    const std::span<const uint8_t> bytes = file_->tensor_data(*s.src);
    const auto plain = plain_float_dtype(s.src->type);
    if (plain && s.permute_heads == 0) {
      TensorView v;
      v.info = s.info;
      v.data = bytes.data();
      v.keepalive = std::shared_ptr<const void>(file_, bytes.data());  // the file (and its map) stays alive
      v.file_backed = true;
      return v;
    }
    const int64_t n = s.info.numel();
    const int64_t rows = s.info.shape[0];
    auto decode = [&](float* out) -> Status {
      Status st = dequantize_ggml(s.src->type, bytes, n, out, s.src->name);
      return st.with_context(file_->path().string());
    };
    auto unpermute = [&](const float* in, float* out) {
      permute_rows_interleaved_to_half(in, out, s.permute_heads, s.head_dim, n / rows);
    };
    if (s.info.dtype == DType::kF32) {
      float* dst = nullptr;
      TensorView v = make_owned_f32(s.info.name, s.info.shape, &dst);
      if (s.permute_heads == 0) {
        RTNQ_RETURN_IF_ERROR(decode(dst));
      } else {
        std::vector<float> tmp(static_cast<size_t>(n));
        RTNQ_RETURN_IF_ERROR(decode(tmp.data()));
        unpermute(tmp.data(), dst);
      }
      return v;
    }
    std::vector<float> tmp(static_cast<size_t>(n)), permuted(static_cast<size_t>(n));
    RTNQ_RETURN_IF_ERROR(decode(tmp.data()));
    unpermute(tmp.data(), permuted.data());
    tmp.swap(permuted);
    // F16 / BF16 q or k: back to the stored dtype, exactly (the values came from that dtype).
    return make_owned_from_f32(s.info, tmp.data());
  }

  std::string stored_type(const std::string& name) const override {
    auto it = index_.find(name);
    if (it == index_.end()) return "";
    return ggml_type_name(served_[it->second].src->type);
  }

 private:
  std::shared_ptr<const GgufFile> file_;
  std::vector<Served> served_;
  std::vector<TensorInfo> infos_;
  std::unordered_map<std::string, size_t> index_;
};

// ---------------------------------------------------------------------------------------------
// Spec

struct SpecReader {
  const GgufFile& f;
  std::string arch;

  std::string file() const { return f.path().string(); }
  std::string key(std::string_view k) const { return arch + "." + std::string(k); }

  Expected<int64_t> required_int(std::string_view k) const {
    const std::string full = key(k);
    const GgufValue* v = f.find(full);
    if (!v) return corrupt(fmt::format("{}: missing metadata key '{}'", file(), full));
    const auto x = v->as_int();
    if (!x) return corrupt(fmt::format("{}: key '{}' is a {}, expected an integer", file(), full,
                                       gguf_value_type_name(v->type)));
    if (*x <= 0 || *x > kMaxDim)
      return corrupt(fmt::format("{}: key '{}' is {}, expected 1 to {}", file(), full, *x, kMaxDim));
    return *x;
  }
  Expected<std::optional<int64_t>> optional_int(std::string_view k) const {
    const std::string full = key(k);
    if (!f.find(full)) return std::optional<int64_t>();
    RTNQ_ASSIGN_OR_RETURN(int64_t x, required_int(k));
    return std::optional<int64_t>(x);
  }
  Expected<std::optional<double>> optional_float(std::string_view k) const {
    const std::string full = key(k);
    const GgufValue* v = f.find(full);
    if (!v) return std::optional<double>();
    const auto x = v->as_double();
    if (!x || !std::isfinite(*x))
      return corrupt(fmt::format("{}: key '{}' is {}, expected a finite number", file(), full, format_gguf_value(*v)));
    // An f32 1e-5 widens to 9.99999974e-06; the shortest decimal that round-trips the float is
    // what the source config said, and what a written config.json should say again.
    if (v->type == GgufValueType::kF32) {
      const std::string text = fmt::format("{}", float(*x));
      double shortest = *x;
      std::from_chars(text.data(), text.data() + text.size(), shortest);
      return std::optional<double>(shortest);
    }
    return std::optional<double>(*x);
  }
};

// head_count_kv may be one number or (for models with per-layer counts) an array; we model one.
Expected<int64_t> read_kv_heads(const SpecReader& r, int64_t n_heads) {
  const std::string full = r.key("attention.head_count_kv");
  const GgufValue* v = r.f.find(full);
  if (!v) return n_heads;
  if (v->type != GgufValueType::kArray) return r.required_int("attention.head_count_kv");
  std::optional<int64_t> first;
  for (uint64_t k = 0; k < v->count; ++k) {
    const auto x = v->int_at(k);
    if (!x) return corrupt(fmt::format("{}: key '{}'[{}] is not an integer", r.file(), full, k));
    if (first && *first != *x)
      return unsupported(fmt::format("{}: key '{}' gives different KV head counts per layer ({} and {})",
                                     r.file(), full, *first, *x));
    first = *x;
  }
  if (!first || *first <= 0 || *first > kMaxDim)
    return corrupt(fmt::format("{}: key '{}' holds no valid head count", r.file(), full));
  return *first;
}

// Llama 3.x GGUFs carry their RoPE scaling as a `rope_freqs.weight` tensor of per-frequency
// divisors instead of metadata. Recover the HF llama3 parameters by taking the largest divisor as
// the factor and checking the whole tensor against the standard low/high frequency factors.
Expected<RopeScaling> llama3_scaling_from_rope_freqs(const GgufFile& f, const GgufTensorInfo& t,
                                                     const ModelSpec& spec) {
  const int64_t half = spec.head_dim / 2;
  if (t.type != GgmlType::kF32 || t.numel() != half)
    return unsupported(fmt::format("{}: tensor 'rope_freqs.weight' is {} with {} values, expected F32 with {}",
                                   f.path().string(), ggml_type_name(t.type), t.numel(), half));
  std::vector<float> got(static_cast<size_t>(half));
  std::memcpy(got.data(), f.tensor_data(t).data(), size_t(half) * sizeof(float));
  RopeScaling rs;
  rs.type = RopeScaling::Type::kLlama3;
  rs.factor = 0;
  for (float g : got) rs.factor = std::max(rs.factor, double(g));
  const double low_wavelen = double(rs.original_max_position_embeddings) / rs.low_freq_factor;
  const double high_wavelen = double(rs.original_max_position_embeddings) / rs.high_freq_factor;
  for (int64_t k = 0; k < half; ++k) {
    const double freq = std::pow(spec.rope_theta, -2.0 * double(k) / double(spec.head_dim));
    const double wavelen = 2.0 * std::numbers::pi / freq;
    double expect = 1.0;
    if (wavelen > low_wavelen) {
      expect = rs.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (double(rs.original_max_position_embeddings) / wavelen - rs.low_freq_factor) /
                            (rs.high_freq_factor - rs.low_freq_factor);
      expect = 1.0 / ((1.0 - smooth) / rs.factor + smooth);
    }
    if (!(std::fabs(expect - double(got[size_t(k)])) <= 1e-3 * expect))
      return unsupported(fmt::format("{}: 'rope_freqs.weight' does not match llama3 RoPE scaling with factor {}, "
                                     "low/high frequency factors 1/4 and 8192 original positions (entry {}: {} vs {})",
                                     f.path().string(), rs.factor, k, got[size_t(k)], expect));
  }
  return rs;
}

Expected<ModelSpec> read_spec(const GgufFile& f, const std::string& arch) {
  const SpecReader r{f, arch};
  ModelSpec s;
  s.model_type = arch;
  s.architecture = arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  RTNQ_ASSIGN_OR_RETURN(s.num_layers, r.required_int("block_count"));
  RTNQ_ASSIGN_OR_RETURN(s.hidden_size, r.required_int("embedding_length"));
  RTNQ_ASSIGN_OR_RETURN(s.intermediate_size, r.required_int("feed_forward_length"));
  RTNQ_ASSIGN_OR_RETURN(s.num_heads, r.required_int("attention.head_count"));
  RTNQ_ASSIGN_OR_RETURN(s.num_kv_heads, read_kv_heads(r, s.num_heads));
  RTNQ_ASSIGN_OR_RETURN(auto key_length, r.optional_int("attention.key_length"));
  RTNQ_ASSIGN_OR_RETURN(auto value_length, r.optional_int("attention.value_length"));
  if (!key_length && s.hidden_size % s.num_heads != 0)
    return corrupt(fmt::format("{}: embedding_length {} is not a multiple of head_count {} and there is no '{}'",
                               r.file(), s.hidden_size, s.num_heads, r.key("attention.key_length")));
  s.head_dim = key_length ? *key_length : s.hidden_size / s.num_heads;
  if (value_length && *value_length != s.head_dim)
    return unsupported(fmt::format("{}: value_length {} differs from key_length {}", r.file(), *value_length,
                                   s.head_dim));
  RTNQ_ASSIGN_OR_RETURN(auto rope_dims, r.optional_int("rope.dimension_count"));
  if (rope_dims && *rope_dims != s.head_dim)
    return unsupported(fmt::format("{}: partial rotary embeddings ({} = {} of head_dim {}) are not supported",
                                   r.file(), r.key("rope.dimension_count"), *rope_dims, s.head_dim));
  RTNQ_ASSIGN_OR_RETURN(auto ctx, r.optional_int("context_length"));
  if (ctx) s.max_position_embeddings = *ctx;
  RTNQ_ASSIGN_OR_RETURN(auto eps, r.optional_float("attention.layer_norm_rms_epsilon"));
  if (!eps) return corrupt(fmt::format("{}: missing metadata key '{}'", r.file(), r.key("attention.layer_norm_rms_epsilon")));
  s.rms_norm_eps = *eps;
  RTNQ_ASSIGN_OR_RETURN(auto theta, r.optional_float("rope.freq_base"));
  if (theta) s.rope_theta = *theta;

  // RoPE scaling: explicit metadata (newer "rope.scaling.*", older "rope.scale_linear").
  std::string scaling_type = "none";
  if (auto t = f.get_string(r.key("rope.scaling.type"))) scaling_type = std::string(*t);
  RTNQ_ASSIGN_OR_RETURN(auto scaling_factor, r.optional_float("rope.scaling.factor"));
  RTNQ_ASSIGN_OR_RETURN(auto scale_linear, r.optional_float("rope.scale_linear"));
  if (scale_linear && !f.find(r.key("rope.scaling.type"))) {
    scaling_type = "linear";
    scaling_factor = scale_linear;
  }
  if (scaling_type == "linear") {
    if (scaling_factor && *scaling_factor != 1.0) {
      s.rope_scaling.type = RopeScaling::Type::kLinear;
      s.rope_scaling.factor = *scaling_factor;
    }
  } else if (scaling_type != "none") {
    return unsupported(fmt::format("{}: RoPE scaling type '{}' is not supported (none, linear, llama3)", r.file(),
                                   scaling_type));
  }
  if (const GgufTensorInfo* rf = f.find_tensor("rope_freqs.weight")) {
    if (s.rope_scaling.type != RopeScaling::Type::kNone)
      return unsupported(fmt::format("{}: both {} scaling metadata and a rope_freqs.weight tensor", r.file(),
                                     scaling_type));
    RTNQ_ASSIGN_OR_RETURN(s.rope_scaling, llama3_scaling_from_rope_freqs(f, *rf, s));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

Expected<TokenizerData> read_tokenizer(const GgufFile& f, std::vector<std::pair<std::string, std::string>>* notes) {
  TokenizerData tok;
  const std::string file = f.path().string();
  const auto model = f.get_string("tokenizer.ggml.model");
  if (!model) return tok;
  if (*model == "gpt2") {
    tok.kind = TokenizerData::Kind::kGpt2Bpe;
  } else if (*model == "llama") {
    tok.kind = TokenizerData::Kind::kSentencePiece;
  } else {
    notes->emplace_back("tokenizer", fmt::format("GGUF tokenizer model '{}' is not supported; none loaded", *model));
    return tok;
  }
  RTNQ_ASSIGN_OR_RETURN(auto tokens, f.get_string_array("tokenizer.ggml.tokens"));
  tok.tokens.assign(tokens.begin(), tokens.end());
  const size_t n = tok.tokens.size();
  if (f.find("tokenizer.ggml.token_type")) {
    RTNQ_ASSIGN_OR_RETURN(auto types, f.get_int_array("tokenizer.ggml.token_type"));
    if (types.size() != n)
      return corrupt(fmt::format("{}: tokenizer.ggml.token_type has {} entries for {} tokens", file, types.size(), n));
    tok.token_types.assign(types.begin(), types.end());
  }
  if (tok.kind == TokenizerData::Kind::kSentencePiece && f.find("tokenizer.ggml.scores")) {
    RTNQ_ASSIGN_OR_RETURN(auto scores, f.get_float_array("tokenizer.ggml.scores"));
    if (scores.size() != n)
      return corrupt(fmt::format("{}: tokenizer.ggml.scores has {} entries for {} tokens", file, scores.size(), n));
    tok.scores.assign(scores.begin(), scores.end());
  }
  if (tok.kind == TokenizerData::Kind::kGpt2Bpe) {
    if (f.find("tokenizer.ggml.merges")) {
      RTNQ_ASSIGN_OR_RETURN(auto merges, f.get_string_array("tokenizer.ggml.merges"));
      tok.merges.assign(merges.begin(), merges.end());
    }
    if (auto pre = f.get_string("tokenizer.ggml.pre")) tok.pre = std::string(*pre);
  }
  auto id = [&](const char* key, int64_t* out) -> Status {
    const GgufValue* v = f.find(key);
    if (!v) return Status::ok();
    const auto x = v->as_int();
    if (!x || *x < 0 || uint64_t(*x) >= n)
      return corrupt(fmt::format("{}: {} is {}, expected a token id below {}", file, key, format_gguf_value(*v), n));
    *out = *x;
    return Status::ok();
  };
  RTNQ_RETURN_IF_ERROR(id("tokenizer.ggml.bos_token_id", &tok.bos_id));
  RTNQ_RETURN_IF_ERROR(id("tokenizer.ggml.eos_token_id", &tok.eos_id));
  RTNQ_RETURN_IF_ERROR(id("tokenizer.ggml.unknown_token_id", &tok.unk_id));
  RTNQ_RETURN_IF_ERROR(id("tokenizer.ggml.padding_token_id", &tok.pad_id));
  // llama.cpp's defaults when the keys are absent: SentencePiece vocabularies add BOS, BPE ones do not.
  tok.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(tok.kind == TokenizerData::Kind::kSentencePiece);
  tok.add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (auto t = f.get_string("tokenizer.chat_template")) tok.chat_template = std::string(*t);
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Tensors

Expected<std::vector<Served>> map_tensors(const GgufFile& f, const ModelSpec& spec, bool permute_qk) {
  const std::string file = f.path().string();
  std::vector<Served> out;
  std::map<std::string, size_t> seen;  // HF name -> index in out
  for (const GgufTensorInfo& t : f.tensors()) {
    auto m = map_name(t.name);
    if (!m) {
      // rope_freqs.weight was read into the spec; anything else would be silently dropped from
      // the model (an o_proj bias, MLP biases, ...), so refuse rather than serve a different model.
      if (t.name == "rope_freqs.weight") continue;
      return unsupported(fmt::format("{}: tensor '{}' has no Hugging Face {} counterpart that rtnq serves", file,
                                     t.name, spec.architecture));
    }
    if (m->layer >= spec.num_layers)
      return corrupt(fmt::format("{}: tensor '{}' belongs to layer {} but block_count is {}", file, t.name, m->layer,
                                 spec.num_layers));
    Served s;
    s.src = &t;
    s.info.name = m->hf;
    s.info.dtype = plain_float_dtype(t.type).value_or(DType::kF32);
    s.info.shape.assign(t.ne.rbegin(), t.ne.rend());
    if (!plain_float_dtype(t.type) && !ggml_can_dequantize(t.type))
      return unsupported(fmt::format("{}: tensor '{}' is stored as {}, which cannot be dequantized (supported: F32, "
                                     "F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                                     file, t.name, ggml_type_name(t.type)));
    // The shape each served tensor must have.
    Shape expect;
    const int64_t q_rows = spec.num_heads * spec.head_dim, kv_rows = spec.num_kv_heads * spec.head_dim;
    const std::string_view sfx = m->suffix;
    if (m->layer < 0) {
      expect = m->hf == "model.norm.weight" ? Shape{spec.hidden_size} : Shape{spec.vocab_size, spec.hidden_size};
    } else if (sfx.ends_with("norm.weight")) {
      expect = {spec.hidden_size};
    } else if (sfx == "attn_q.weight") {
      expect = {q_rows, spec.hidden_size};
    } else if (sfx == "attn_k.weight" || sfx == "attn_v.weight") {
      expect = {kv_rows, spec.hidden_size};
    } else if (sfx == "attn_q.bias") {
      expect = {q_rows};
    } else if (sfx == "attn_k.bias" || sfx == "attn_v.bias") {
      expect = {kv_rows};
    } else if (sfx == "attn_output.bias") {
      expect = {spec.hidden_size};
    } else if (sfx == "attn_output.weight") {
      expect = {spec.hidden_size, q_rows};
    } else if (sfx == "ffn_down.weight") {
      expect = {spec.hidden_size, spec.intermediate_size};
    } else {
      expect = {spec.intermediate_size, spec.hidden_size};  // ffn_gate, ffn_up
    }
    if (s.info.shape != expect)
      return corrupt(fmt::format("{}: tensor '{}' ({}) has shape {}, expected {}", file, t.name, m->hf,
                                 shape_to_string(s.info.shape), shape_to_string(expect)));
    if (permute_qk && sfx.starts_with("attn_q.")) s.permute_heads = spec.num_heads;
    if (permute_qk && sfx.starts_with("attn_k.")) s.permute_heads = spec.num_kv_heads;
    s.head_dim = spec.head_dim;
    seen.emplace(s.info.name, out.size());
    out.push_back(std::move(s));
  }
  // Every tensor the model needs must be there.
  std::vector<std::string> required = {"token_embd.weight", "output_norm.weight"};
  const bool bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    for (const auto& n : kLayerNames) {
      if (n.gguf == "attn_output.bias" || (n.gguf.ends_with(".bias") && !bias)) continue;
      required.push_back(fmt::format("blk.{}.{}", l, n.gguf));
    }
  }
  for (const auto& name : required)
    if (!f.find_tensor(name)) return corrupt(fmt::format("{}: missing tensor '{}'", file, name));
  return out;
}

std::string type_summary(const GgufFile& f) {
  std::map<std::string, int> counts;
  for (const auto& t : f.tensors()) counts[ggml_type_name(t.type)]++;
  std::vector<std::string> parts;
  for (const auto& [name, n] : counts) parts.push_back(fmt::format("{} x {}", name, n));
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

Expected<LoadedModel> load_gguf(const std::filesystem::path& path) {
  RTNQ_ASSIGN_OR_RETURN(std::shared_ptr<const GgufFile> file, GgufFile::open(path));
  const GgufFile& f = *file;
  const std::string fname = path.string();
  const auto arch_sv = f.get_string("general.architecture");
  if (!arch_sv) return corrupt(fmt::format("{}: missing string metadata key 'general.architecture'", fname));
  const std::string arch(*arch_sv);
  if (arch != "llama" && arch != "qwen2")
    return unsupported(fmt::format("{}: GGUF architecture '{}' is not supported (llama, qwen2)", fname, arch));

  LoadedModel m;
  m.format = SourceFormat::kGguf;
  m.path = path;
  RTNQ_ASSIGN_OR_RETURN(m.spec, read_spec(f, arch));
  ModelSpec& s = m.spec;

  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) return corrupt(fmt::format("{}: missing tensor 'token_embd.weight'", fname));
  if (embd->ne.size() != 2)
    return corrupt(fmt::format("{}: tensor 'token_embd.weight' has {} dimensions, expected 2", fname, embd->ne.size()));
  s.vocab_size = embd->ne[1];
  if (const GgufValue* toks = f.find("tokenizer.ggml.tokens"); toks && toks->type == GgufValueType::kArray &&
                                                                 int64_t(toks->count) != s.vocab_size)
    return corrupt(fmt::format("{}: tokenizer.ggml.tokens has {} entries but token_embd.weight has {} rows", fname,
                               toks->count, s.vocab_size));
  s.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  s.attention_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;

  // The model's own dtype: what its unquantized matrices are stored in, else BF16 (so a quantized
  // output keeps BF16 scales and activations).
  bool any_bf16 = false, any_f16 = false;
  for (const auto& t : f.tensors()) {
    if (t.ne.size() != 2) continue;
    any_bf16 |= t.type == GgmlType::kBF16;
    any_f16 |= t.type == GgmlType::kF16;
  }
  s.torch_dtype = any_bf16 ? DType::kBF16 : any_f16 ? DType::kF16 : DType::kBF16;

  std::vector<std::pair<std::string, std::string>> notes;
  RTNQ_ASSIGN_OR_RETURN(m.tokenizer, read_tokenizer(f, &notes));
  s.bos_token_id = m.tokenizer.bos_id;
  if (m.tokenizer.eos_id >= 0) s.eos_token_ids.push_back(m.tokenizer.eos_id);
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    const auto id = f.get_int(key);
    if (id && *id >= 0 && *id < s.vocab_size &&
        std::find(s.eos_token_ids.begin(), s.eos_token_ids.end(), *id) == s.eos_token_ids.end())
      s.eos_token_ids.push_back(*id);
  }

  // llama.cpp permutes q/k only for its llama converter; qwen2 rows are stored as HF has them.
  RTNQ_ASSIGN_OR_RETURN(auto served, map_tensors(f, s, arch == "llama"));
  m.weights = std::make_unique<GgufWeightSource>(file, std::move(served));

  Status valid = validate_spec(s);
  if (!valid.is_ok()) return valid.with_context(fname);

  m.details.emplace_back("gguf.version", std::to_string(f.version()));
  m.details.emplace_back("gguf.alignment", std::to_string(f.alignment()));
  m.details.emplace_back("gguf.tensor_count", std::to_string(f.tensors().size()));
  m.details.emplace_back("gguf.tensor_types", type_summary(f));
  for (auto& n : notes) m.details.push_back(std::move(n));
  for (const auto& [key, value] : f.metadata()) m.details.emplace_back(key, format_gguf_value(value));
  return m;
}

}  // namespace rtnq
