#include "engine/llama-model.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "core/check.h"
#include "cpu/ops.h"

namespace rtnq {
namespace {

std::string kind_label(const cpu::Linear& l) {
  switch (l.kind()) {
    case cpu::Linear::Kind::kF32: return "F32";
    case cpu::Linear::Kind::kF16: return "F16";
    case cpu::Linear::Kind::kBF16: return "BF16";
    case cpu::Linear::Kind::kInt4:
    case cpu::Linear::Kind::kInt8:
      return fmt::format("INT{} g{}", l.bits(), l.group_size() == l.cols() ? std::string("channel")
                                                                            : std::to_string(l.group_size()));
  }
  return "?";
}

// The two int formats compressed-tensors writes weight_shape in.
Expected<std::pair<int64_t, int64_t>> read_weight_shape(const TensorView& v) {
  if (v.numel() != 2 || (v.info.dtype != DType::kI64 && v.info.dtype != DType::kI32))
    return corrupt(fmt::format("tensor '{}': expected int32/int64 [2], got {} {}", v.info.name,
                               dtype_name(v.info.dtype), shape_to_string(v.info.shape)));
  if (v.info.dtype == DType::kI64) return std::pair<int64_t, int64_t>{v.as<int64_t>()[0], v.as<int64_t>()[1]};
  return std::pair<int64_t, int64_t>{v.as<int32_t>()[0], v.as<int32_t>()[1]};
}

}  // namespace

LlamaModel::LlamaModel(LoadedModel model, int n_threads) : loaded_(std::move(model)), pool_(n_threads) {}

Expected<std::unique_ptr<LlamaModel>> LlamaModel::create(LoadedModel model, int n_threads) {
  RTNQ_RETURN_IF_ERROR(validate_spec(model.spec).with_context(model.path.string()));
  if (!model.weights) return invalid_argument(fmt::format("{}: the model has no weights", model.path.string()));
  std::unique_ptr<LlamaModel> m(new LlamaModel(std::move(model), n_threads));
  RTNQ_RETURN_IF_ERROR(m->build().with_context(m->loaded_.path.string()));
  return m;
}

Expected<std::vector<float>> LlamaModel::load_vector(const std::string& name, int64_t n, bool optional) {
  const WeightSource& ws = *loaded_.weights;
  if (!ws.contains(name)) {
    if (optional) return std::vector<float>{};
    return not_found(fmt::format("tensor '{}' is missing", name));
  }
  RTNQ_ASSIGN_OR_RETURN(TensorView v, ws.get(name));
  if (v.numel() != n || !is_float(v.info.dtype))
    return corrupt(fmt::format("tensor '{}': expected a float vector of {}, got {} {}", name, n,
                               dtype_name(v.info.dtype), shape_to_string(v.info.shape)));
  std::vector<float> out(static_cast<size_t>(n));
  convert_to_f32(v.data, v.info.dtype, out.data(), size_t(n));
  return out;
}

Expected<cpu::Linear> LlamaModel::load_linear(const std::string& prefix, int64_t out, int64_t in) {
  const WeightSource& ws = *loaded_.weights;
  if (ws.contains(prefix + ".weight_packed")) {
    RTNQ_ASSIGN_OR_RETURN(TensorView packed, ws.get(prefix + ".weight_packed"));
    RTNQ_ASSIGN_OR_RETURN(TensorView scales, ws.get(prefix + ".weight_scale"));
    if (ws.contains(prefix + ".weight_shape")) {
      RTNQ_ASSIGN_OR_RETURN(TensorView shape_view, ws.get(prefix + ".weight_shape"));
      RTNQ_ASSIGN_OR_RETURN(auto shape, read_weight_shape(shape_view));
      if (shape.first != out || shape.second != in)
        return corrupt(fmt::format("tensor '{}.weight_shape' says [{}, {}], the model config implies [{}, {}]", prefix,
                                   shape.first, shape.second, out, in));
    }
    return cpu::Linear::packed(packed, scales, out, in);
  }
  if (!ws.contains(prefix + ".weight")) return not_found(fmt::format("tensor '{}.weight' is missing", prefix));
  RTNQ_ASSIGN_OR_RETURN(TensorView w, ws.get(prefix + ".weight"));
  if (w.info.shape != Shape{out, in})
    return corrupt(fmt::format("tensor '{}.weight': expected shape [{}, {}], got {}", prefix, out, in,
                               shape_to_string(w.info.shape)));
  return cpu::Linear::dense(w);
}

Status LlamaModel::build() {
  const ModelSpec& s = loaded_.spec;
  const WeightSource& ws = *loaded_.weights;
  const int64_t d = s.hidden_size, hd = s.head_dim, q_out = s.num_heads * hd, kv_out = s.num_kv_heads * hd;
  RTNQ_ASSIGN_OR_RETURN(embed_, ws.get("model.embed_tokens.weight"));
  if (embed_.info.shape != Shape{s.vocab_size, d} || !is_float(embed_.info.dtype) || embed_.info.dtype == DType::kF64)
    return corrupt(fmt::format("tensor 'model.embed_tokens.weight': expected F32/F16/BF16 [{}, {}], got {} {}",
                               s.vocab_size, d, dtype_name(embed_.info.dtype), shape_to_string(embed_.info.shape)));
  layers_.resize(size_t(s.num_layers));
  for (int64_t i = 0; i < s.num_layers; ++i) {
    Layer& L = layers_[size_t(i)];
    const std::string p = fmt::format("model.layers.{}.", i);
    RTNQ_ASSIGN_OR_RETURN(L.attn_norm, load_vector(p + "input_layernorm.weight", d, false));
    RTNQ_ASSIGN_OR_RETURN(L.ffn_norm, load_vector(p + "post_attention_layernorm.weight", d, false));
    RTNQ_ASSIGN_OR_RETURN(L.q, load_linear(module_hf_prefix(i, Module::kQ), q_out, d));
    RTNQ_ASSIGN_OR_RETURN(L.k, load_linear(module_hf_prefix(i, Module::kK), kv_out, d));
    RTNQ_ASSIGN_OR_RETURN(L.v, load_linear(module_hf_prefix(i, Module::kV), kv_out, d));
    RTNQ_ASSIGN_OR_RETURN(L.o, load_linear(module_hf_prefix(i, Module::kO), d, q_out));
    RTNQ_ASSIGN_OR_RETURN(L.gate, load_linear(module_hf_prefix(i, Module::kGate), s.intermediate_size, d));
    RTNQ_ASSIGN_OR_RETURN(L.up, load_linear(module_hf_prefix(i, Module::kUp), s.intermediate_size, d));
    RTNQ_ASSIGN_OR_RETURN(L.down, load_linear(module_hf_prefix(i, Module::kDown), d, s.intermediate_size));
    // Biases: required when the config says so (Qwen2), used whenever present.
    const bool need = s.attention_bias;
    RTNQ_ASSIGN_OR_RETURN(L.q_bias, load_vector(module_hf_prefix(i, Module::kQ) + ".bias", q_out, !need));
    RTNQ_ASSIGN_OR_RETURN(L.k_bias, load_vector(module_hf_prefix(i, Module::kK) + ".bias", kv_out, !need));
    RTNQ_ASSIGN_OR_RETURN(L.v_bias, load_vector(module_hf_prefix(i, Module::kV) + ".bias", kv_out, !need));
  }
  RTNQ_ASSIGN_OR_RETURN(final_norm_, load_vector("model.norm.weight", d, false));
  if (ws.contains("lm_head.weight") || ws.contains("lm_head.weight_packed")) {
    RTNQ_ASSIGN_OR_RETURN(lm_head_, load_linear("lm_head", s.vocab_size, d));
  } else if (s.tie_word_embeddings) {
    RTNQ_ASSIGN_OR_RETURN(lm_head_, cpu::Linear::dense(embed_));
    lm_head_tied_ = true;
  } else {
    return not_found("tensor 'lm_head.weight' is missing and tie_word_embeddings is false");
  }
  inv_freq_ = cpu::rope_inv_freq(s.head_dim, s.rope_theta, s.rope_scaling);
  return Status::ok();
}

KvCache LlamaModel::new_cache(int64_t max_seq) const {
  const ModelSpec& s = loaded_.spec;
  if (max_seq <= 0) max_seq = s.max_position_embeddings;
  return KvCache(s.num_layers, max_seq, s.num_kv_heads, s.head_dim);
}

Status LlamaModel::forward(std::span<const int32_t> tokens, KvCache& cache, float* logits, bool all_logits) {
  const ModelSpec& s = loaded_.spec;
  const int64_t n = int64_t(tokens.size());
  const int64_t start = cache.size();
  if (n == 0) return invalid_argument("forward: no tokens");
  if (start + n > cache.max_seq())
    return invalid_argument(fmt::format("forward: positions {}..{} exceed the context of {}", start, start + n - 1,
                                        cache.max_seq()));
  for (int64_t t = 0; t < n; ++t)
    if (tokens[size_t(t)] < 0 || tokens[size_t(t)] >= s.vocab_size)
      return invalid_argument(fmt::format("forward: token id {} outside the vocabulary of {}", tokens[size_t(t)],
                                          s.vocab_size));
  const int64_t d = s.hidden_size, hd = s.head_dim, nh = s.num_heads, nkv = s.num_kv_heads;
  const int64_t q_dim = nh * hd, kv_dim = nkv * hd, ff = s.intermediate_size;
  const float eps = float(s.rms_norm_eps);
  auto buf = [n](int64_t w) { return std::vector<float>(static_cast<size_t>(n * w)); };
  std::vector<float> x = buf(d), xb = buf(d), tmp = buf(d), q = buf(q_dim), k = buf(kv_dim), v = buf(kv_dim),
                     att = buf(q_dim), g = buf(ff), u = buf(ff);

  if (n == 1) {
    // One token (decode): the whole step runs in ONE pool region as a sequence of phases
    // (cpu::run_phases) instead of five wake-ups per layer. Every op and its arithmetic are the
    // ones of the general path below; only the scheduling differs.
    constexpr int64_t kSteps = 9;         // phases per layer, see `step` below
    constexpr int64_t kRows = 32;         // rows per work item of a layer's linears
    constexpr int64_t kHeadRows = 256;    // rows per work item of lm_head
    const int64_t pos = start;
    auto qkv_of = [&](const Layer& Ly) {
      return std::array<cpu::LinearJob, 3>{{{&Ly.q, xb.data(), q.data()}, {&Ly.k, xb.data(), k.data()},
                                            {&Ly.v, xb.data(), v.data()}}};
    };
    auto gu_of = [&](const Layer& Ly) {
      return std::array<cpu::LinearJob, 2>{{{&Ly.gate, xb.data(), g.data()}, {&Ly.up, xb.data(), u.data()}}};
    };
    auto o_of = [&](const Layer& Ly) { return std::array<cpu::LinearJob, 1>{{{&Ly.o, att.data(), tmp.data()}}}; };
    auto down_of = [&](const Layer& Ly) { return std::array<cpu::LinearJob, 1>{{{&Ly.down, g.data(), tmp.data()}}}; };
    const std::array<cpu::LinearJob, 1> head{{{&lm_head_, xb.data(), logits}}};
    std::vector<int64_t> items{1};
    for (const Layer& Ly : layers_) {
      items.insert(items.end(), {cpu::count_row_items(qkv_of(Ly), kRows), 1, nh, cpu::count_row_items(o_of(Ly), kRows),
                                 1, cpu::count_row_items(gu_of(Ly), kRows), 1,
                                 cpu::count_row_items(down_of(Ly), kRows), 1});
    }
    items.push_back(cpu::count_row_items(head, kHeadRows));
    const size_t last = items.size() - 1;
    cpu::run_phases(items, [&](size_t p, int64_t item) {
      if (p == 0) {
        cpu::embedding_lookup(embed_.data, embed_.info.dtype, d, tokens[0], x.data());
        cpu::rmsnorm(x.data(), layers_[0].attn_norm.data(), xb.data(), d, eps);
        return;
      }
      if (p == last) {
        cpu::run_row_item(head, kHeadRows, item);
        return;
      }
      const int64_t li = int64_t(p - 1) / kSteps, step = int64_t(p - 1) % kSteps;
      const Layer& L = layers_[size_t(li)];
      switch (step) {
        case 0: cpu::run_row_item(qkv_of(L), kRows, item); break;
        case 1:
          if (!L.q_bias.empty()) cpu::add_bias(q.data(), L.q_bias.data(), q_dim);
          if (!L.k_bias.empty()) cpu::add_bias(k.data(), L.k_bias.data(), kv_dim);
          if (!L.v_bias.empty()) cpu::add_bias(v.data(), L.v_bias.data(), kv_dim);
          cpu::rope_apply(q.data(), nh, hd, pos, inv_freq_.data(), s.rope_layout);
          cpu::rope_apply(k.data(), nkv, hd, pos, inv_freq_.data(), s.rope_layout);
          std::memcpy(cache.k(li, pos), k.data(), size_t(kv_dim) * sizeof(float));
          std::memcpy(cache.v(li, pos), v.data(), size_t(kv_dim) * sizeof(float));
          break;
        case 2: {
          thread_local std::vector<float> scores;
          int64_t first = 0;
          if (s.sliding_window && *s.sliding_window > 0) first = std::max<int64_t>(0, pos + 1 - *s.sliding_window);
          const int64_t n_ctx = pos + 1 - first, stride = cache.row_stride();
          if (scores.size() < size_t(n_ctx)) scores.resize(size_t(n_ctx));
          cpu::attention_head(q.data(), cache.k(li, 0) + first * stride, cache.v(li, 0) + first * stride, stride, n_ctx,
                              item, nh, nkv, hd, att.data(), scores.data());
          break;
        }
        case 3: cpu::run_row_item(o_of(L), kRows, item); break;
        case 4:
          cpu::add_inplace(x.data(), tmp.data(), d);
          cpu::rmsnorm(x.data(), L.ffn_norm.data(), xb.data(), d, eps);
          break;
        case 5: cpu::run_row_item(gu_of(L), kRows, item); break;
        case 6: cpu::swiglu(g.data(), u.data(), g.data(), ff); break;
        case 7: cpu::run_row_item(down_of(L), kRows, item); break;
        case 8:
          cpu::add_inplace(x.data(), tmp.data(), d);
          cpu::rmsnorm(x.data(), li + 1 < s.num_layers ? layers_[size_t(li + 1)].attn_norm.data() : final_norm_.data(),
                       xb.data(), d, eps);
          break;
      }
    }, &pool_);
    cache.set_size(start + 1);
    return Status::ok();
  }

  for (int64_t t = 0; t < n; ++t) cpu::embedding_lookup(embed_.data, embed_.info.dtype, d, tokens[size_t(t)], &x[size_t(t * d)]);

  for (int64_t li = 0; li < s.num_layers; ++li) {
    const Layer& L = layers_[size_t(li)];
    for (int64_t t = 0; t < n; ++t) cpu::rmsnorm(&x[size_t(t * d)], L.attn_norm.data(), &xb[size_t(t * d)], d, eps);
    const cpu::LinearJob qkv[] = {{&L.q, xb.data(), q.data()}, {&L.k, xb.data(), k.data()}, {&L.v, xb.data(), v.data()}};
    cpu::run_linears(qkv, n, &pool_);
    for (int64_t t = 0; t < n; ++t) {
      float* qt = &q[size_t(t * q_dim)];
      float* kt = &k[size_t(t * kv_dim)];
      float* vt = &v[size_t(t * kv_dim)];
      if (!L.q_bias.empty()) cpu::add_bias(qt, L.q_bias.data(), q_dim);
      if (!L.k_bias.empty()) cpu::add_bias(kt, L.k_bias.data(), kv_dim);
      if (!L.v_bias.empty()) cpu::add_bias(vt, L.v_bias.data(), kv_dim);
      cpu::rope_apply(qt, nh, hd, start + t, inv_freq_.data(), s.rope_layout);
      cpu::rope_apply(kt, nkv, hd, start + t, inv_freq_.data(), s.rope_layout);
      std::memcpy(cache.k(li, start + t), kt, size_t(kv_dim) * sizeof(float));
      std::memcpy(cache.v(li, start + t), vt, size_t(kv_dim) * sizeof(float));
    }
    const float* kc = cache.k(li, 0);
    const float* vc = cache.v(li, 0);
    const int64_t stride = cache.row_stride();
    pool_.parallel_for(n * nh, 1, [&](int64_t i0, int64_t i1) {
      thread_local std::vector<float> scores;
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t t = i / nh, h = i % nh, pos = start + t;
        // Causal: position pos sees [first, pos]; a sliding window (Mistral) moves `first`.
        int64_t first = 0;
        if (s.sliding_window && *s.sliding_window > 0) first = std::max<int64_t>(0, pos + 1 - *s.sliding_window);
        const int64_t n_ctx = pos + 1 - first;
        if (scores.size() < size_t(n_ctx)) scores.resize(size_t(n_ctx));
        cpu::attention_head(&q[size_t(t * q_dim)], kc + first * stride, vc + first * stride, stride, n_ctx, h, nh, nkv,
                            hd, &att[size_t(t * q_dim)], scores.data());
      }
    });
    L.o.forward(att.data(), n, tmp.data(), &pool_);
    cpu::add_inplace(x.data(), tmp.data(), n * d);
    for (int64_t t = 0; t < n; ++t) cpu::rmsnorm(&x[size_t(t * d)], L.ffn_norm.data(), &xb[size_t(t * d)], d, eps);
    const cpu::LinearJob gate_up[] = {{&L.gate, xb.data(), g.data()}, {&L.up, xb.data(), u.data()}};
    cpu::run_linears(gate_up, n, &pool_);
    cpu::swiglu(g.data(), u.data(), g.data(), n * ff);
    L.down.forward(g.data(), n, tmp.data(), &pool_);
    cpu::add_inplace(x.data(), tmp.data(), n * d);
  }
  cache.set_size(start + n);

  const int64_t first_out = all_logits ? 0 : n - 1;
  for (int64_t t = first_out; t < n; ++t)
    cpu::rmsnorm(&x[size_t(t * d)], final_norm_.data(), &xb[size_t((t - first_out) * d)], d, eps);
  lm_head_.forward(xb.data(), n - first_out, logits, &pool_);
  return Status::ok();
}

uint64_t LlamaModel::weight_bytes_per_token() const {
  const ModelSpec& s = loaded_.spec;
  uint64_t b = 0;
  for (const Layer& L : layers_) {
    for (const cpu::Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) b += l->weight_bytes();
    b += uint64_t(L.attn_norm.size() + L.ffn_norm.size() + L.q_bias.size() + L.k_bias.size() + L.v_bias.size()) * 4;
  }
  b += lm_head_.weight_bytes() + final_norm_.size() * 4;
  b += uint64_t(s.hidden_size) * dtype_size(embed_.info.dtype);
  return b;
}

std::string LlamaModel::describe() const {
  std::map<std::string, int> counts;
  for (const Layer& L : layers_)
    for (const cpu::Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) ++counts[kind_label(*l)];
  std::string parts;
  for (const auto& [k, c] : counts) parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", c, k);
  return fmt::format("{} layers; linears: {}; lm_head {}{}", loaded_.spec.num_layers, parts, kind_label(lm_head_),
                     lm_head_tied_ ? " (tied)" : "");
}

}  // namespace rtnq
