// GGUF loader: a tiny synthetic model written byte by byte (names, shapes, un-permuted q/k,
// dtype and dequant paths, tokenizer, llama3 RoPE recovery, every kind of refusal), and the real
// SmolLM2-135M-Instruct Q4_1 file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <numbers>
#include <random>
#include <thread>

#include "../io/gguf-test-builder.h"
#include "io/gguf-dequant.h"
#include "io/gguf.h"
#include "model/loaders.h"

namespace rtnq {
namespace {

using test::GgufBuilder;
using test::TempDir;

constexpr int64_t kHidden = 32, kHeads = 4, kKvHeads = 2, kHeadDim = 8, kInter = 64, kLayers = 2, kVocab = 16;
constexpr uint32_t kF32 = 0, kF16 = 1, kQ8_0 = 8, kIQ4_NL = 20;

struct TinyOptions {
  std::string arch = "llama";
  bool bias = false;
  bool output = false;             // a separate output.weight (untied)
  std::string drop_tensor;         // leave this tensor out
  std::string drop_key;            // leave this metadata key out
  std::string wrong_shape_tensor;  // give this tensor an extra row
  uint32_t up_type = kF16;
  uint32_t k_type = kF16;
  std::string tok_model = "gpt2";   // "llama": SentencePiece vocabulary with scores
  bool o_bias = false;             // llama with attention_bias also has an o_proj bias
  std::string extra_tensor;        // an F32 [hidden] tensor of this name
  int64_t n_tokens = kVocab;
  std::vector<float> rope_freqs;   // non-empty: add rope_freqs.weight
  float rope_theta = 10000.0f;
};

// The tensors of a tiny model with random contents, kept so tests can compare what is served.
struct Tiny {
  std::map<std::string, std::vector<uint8_t>> bytes;  // GGUF name -> raw data
  std::map<std::string, std::vector<int64_t>> ne;     // GGUF name -> dims
  std::map<std::string, uint32_t> type;
  std::vector<uint8_t> file;
  size_t data_offset = 0;
};

uint16_t finite_half(std::mt19937& rng) {
  // Exponent 1..29: normal halves of moderate size, never Inf/NaN.
  return uint16_t(((rng() % 2) << 15) | ((1 + rng() % 29) << 10) | (rng() & 0x3ff));
}

std::vector<uint8_t> random_payload(std::mt19937& rng, uint32_t type, int64_t numel) {
  std::vector<uint8_t> b;
  if (type == kF32) {
    std::normal_distribution<float> d(0, 1);
    std::vector<float> v(static_cast<size_t>(numel));
    for (auto& x : v) x = d(rng);
    return test::as_bytes(v);
  }
  if (type == kF16) {
    std::vector<uint16_t> v(static_cast<size_t>(numel));
    for (auto& x : v) x = finite_half(rng);
    return test::as_bytes(v);
  }
  const auto tr = *ggml_type_traits(GgmlType(type));
  b.resize(size_t(numel / tr.block_size * tr.type_size));
  for (auto& x : b) x = uint8_t(rng());
  for (size_t off = 0; off < b.size(); off += size_t(tr.type_size)) {  // finite scale in front
    const uint16_t h = uint16_t(finite_half(rng) & 0x3fff);                // and small: |d| < 2
    b[off] = uint8_t(h & 0xff);
    b[off + 1] = uint8_t(h >> 8);
  }
  return b;
}

Tiny make_tiny(std::mt19937& rng, const TinyOptions& o = {}) {
  Tiny t;
  GgufBuilder b;
  const std::string a = o.arch;
  auto key = [&](const std::string& k) { return a + "." + k; };
  auto u32 = [&](const std::string& k, uint32_t v) {
    if (k != o.drop_key) b.kv_u32(k, v);
  };
  b.kv_string("general.architecture", a);
  b.kv_string("general.name", "tiny test model");
  u32(key("block_count"), kLayers);
  u32(key("context_length"), 256);
  u32(key("embedding_length"), kHidden);
  u32(key("feed_forward_length"), kInter);
  u32(key("attention.head_count"), kHeads);
  u32(key("attention.head_count_kv"), kKvHeads);
  u32(key("rope.dimension_count"), kHeadDim);
  if (key("attention.layer_norm_rms_epsilon") != o.drop_key) b.kv_f32(key("attention.layer_norm_rms_epsilon"), 1e-5f);
  b.kv_f32(key("rope.freq_base"), o.rope_theta);
  b.kv_string("tokenizer.ggml.model", o.tok_model);
  if (o.tok_model == "gpt2") b.kv_string("tokenizer.ggml.pre", "smollm");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int64_t k = 0; k < o.n_tokens; ++k) {
    tokens.push_back(k < 3 ? "<s" + std::to_string(k) + ">" : std::string(1, char('a' + k)));
    types.push_back(k < 3 ? 3 : 1);
  }
  b.kv_string_array("tokenizer.ggml.tokens", tokens);
  b.kv_array<int32_t>("tokenizer.ggml.token_type", 5, types);
  if (o.tok_model == "gpt2") {
    b.kv_string_array("tokenizer.ggml.merges", {"d e", "de f", "g h"});
    b.kv_bool("tokenizer.ggml.add_bos_token", false);
  } else {
    std::vector<float> scores;
    for (int64_t k = 0; k < o.n_tokens; ++k) scores.push_back(-0.5f * float(k));
    b.kv_array<float>("tokenizer.ggml.scores", 6, scores);
  }
  b.kv_u32("tokenizer.ggml.bos_token_id", 1);
  b.kv_u32("tokenizer.ggml.eos_token_id", 2);
  b.kv_u32("tokenizer.ggml.eot_token_id", 0);
  b.kv_string("tokenizer.chat_template", "{{ messages }}");

  auto add = [&](const std::string& name, std::vector<int64_t> ne, uint32_t type) {
    if (name == o.drop_tensor) return;
    if (name == o.wrong_shape_tensor) ne.back() += 1;
    int64_t numel = 1;
    for (auto d : ne) numel *= d;
    t.bytes[name] = random_payload(rng, type, numel);
    t.ne[name] = ne;
    t.type[name] = type;
    b.tensor(name, std::vector<uint64_t>(ne.begin(), ne.end()), type, t.bytes[name]);
  };
  add("token_embd.weight", {kHidden, kVocab}, kF32);
  add("output_norm.weight", {kHidden}, kF32);
  if (o.output) add("output.weight", {kHidden, kVocab}, kQ8_0);
  if (!o.rope_freqs.empty()) {
    t.bytes["rope_freqs.weight"] = test::as_bytes(o.rope_freqs);
    b.tensor("rope_freqs.weight", {uint64_t(o.rope_freqs.size())}, kF32, t.bytes["rope_freqs.weight"]);
  }
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {kHidden}, kF32);
    add(p + "ffn_norm.weight", {kHidden}, kF32);
    add(p + "attn_q.weight", {kHidden, kHeads * kHeadDim}, kF32);
    add(p + "attn_k.weight", {kHidden, kKvHeads * kHeadDim}, o.k_type);
    add(p + "attn_v.weight", {kHidden, kKvHeads * kHeadDim}, kF32);
    add(p + "attn_output.weight", {kHeads * kHeadDim, kHidden}, kF32);
    if (o.bias) {
      add(p + "attn_q.bias", {kHeads * kHeadDim}, kF32);
      add(p + "attn_k.bias", {kKvHeads * kHeadDim}, kF32);
      add(p + "attn_v.bias", {kKvHeads * kHeadDim}, kF32);
    }
    if (o.o_bias) add(p + "attn_output.bias", {kHidden}, kF32);
    add(p + "ffn_gate.weight", {kHidden, kInter}, kQ8_0);
    add(p + "ffn_up.weight", {kHidden, kInter}, o.up_type);
    add(p + "ffn_down.weight", {kInter, kHidden}, kF32);
  }
  if (!o.extra_tensor.empty()) add(o.extra_tensor, {kHidden}, kF32);
  auto built = b.build();
  t.file = std::move(built.bytes);
  t.data_offset = built.data_offset;
  return t;
}

struct Seeded : ::testing::Test {
  uint32_t seed = std::random_device{}();
  std::mt19937 rng{seed};
};
#define SEED_TRACE SCOPED_TRACE("seed " + std::to_string(seed))

template <typename T>
std::vector<T> view_as(const TensorView& v) {
  std::vector<T> out(size_t(v.numel()));
  std::memcpy(out.data(), v.data, out.size() * sizeof(T));
  return out;
}

template <typename T>
std::vector<T> bytes_as(const std::vector<uint8_t>& b) {
  std::vector<T> out(b.size() / sizeof(T));
  std::memcpy(out.data(), b.data(), b.size());
  return out;
}

// Row r of the served (half-split) matrix is row src_row(r) of the interleaved file matrix.
int64_t interleaved_row_of(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, within = r % head_dim, half = head_dim / 2;
  const int64_t j = within / half, i = within % half;  // within = j * half + i
  return h * head_dim + 2 * i + j;
}

TEST_F(Seeded, TinyLlamaSpecNamesAndLayouts) {
  SEED_TRACE;
  TinyOptions opt;
  opt.bias = true;
  opt.o_bias = true;
  const Tiny t = make_tiny(rng, opt);
  TempDir dir;
  const auto path = dir.write("tiny.gguf", t.file);
  auto m = load_gguf(path);
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelSpec& s = m->spec;
  EXPECT_EQ(m->format, SourceFormat::kGguf);
  EXPECT_EQ(s.architecture, "LlamaForCausalLM");
  EXPECT_EQ(s.model_type, "llama");
  EXPECT_EQ(s.hidden_size, kHidden);
  EXPECT_EQ(s.intermediate_size, kInter);
  EXPECT_EQ(s.num_layers, kLayers);
  EXPECT_EQ(s.num_heads, kHeads);
  EXPECT_EQ(s.num_kv_heads, kKvHeads);
  EXPECT_EQ(s.head_dim, kHeadDim);
  EXPECT_EQ(s.vocab_size, kVocab);
  EXPECT_EQ(s.max_position_embeddings, 256);
  EXPECT_EQ(s.rms_norm_eps, 1e-5);  // the f32 1e-5 read back as the decimal it was written from
  EXPECT_EQ(s.rope_theta, 10000.0);
  EXPECT_EQ(s.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(s.rope_layout, RopeLayout::kHalfSplit);
  EXPECT_TRUE(s.tie_word_embeddings);
  EXPECT_TRUE(s.attention_bias);
  EXPECT_EQ(s.torch_dtype, DType::kF16);  // the unquantized matrices (k, up) are F16
  EXPECT_EQ(s.bos_token_id, 1);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{2, 0}));  // eos, then eot

  const auto& tok = m->tokenizer;
  EXPECT_EQ(tok.kind, TokenizerData::Kind::kGpt2Bpe);
  ASSERT_EQ(tok.tokens.size(), size_t(kVocab));
  EXPECT_EQ(tok.tokens[0], "<s0>");
  EXPECT_EQ(tok.tokens[5], "f");
  EXPECT_EQ(tok.token_types[1], 3);
  EXPECT_EQ(tok.merges, (std::vector<std::string>{"d e", "de f", "g h"}));
  EXPECT_EQ(tok.pre, "smollm");
  EXPECT_EQ(tok.eos_id, 2);
  EXPECT_FALSE(tok.add_bos);
  EXPECT_EQ(tok.chat_template, "{{ messages }}");

  // Every GGUF tensor is served under its HF name with the reversed shape.
  const auto& infos = m->weights->tensors();
  EXPECT_EQ(infos.size(), 2u + size_t(kLayers) * 13u);
  EXPECT_FALSE(m->weights->contains("lm_head.weight"));
  const std::map<std::string, std::string> names = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"blk.1.attn_norm.weight", "model.layers.1.input_layernorm.weight"},
      {"blk.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight"},
      {"blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight"},
      {"blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight"},
      {"blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight"},
      {"blk.1.attn_output.weight", "model.layers.1.self_attn.o_proj.weight"},
      {"blk.1.attn_q.bias", "model.layers.1.self_attn.q_proj.bias"},
      {"blk.1.ffn_gate.weight", "model.layers.1.mlp.gate_proj.weight"},
      {"blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight"},
      {"blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"},
  };
  for (const auto& [g, hf] : names) {
    const TensorInfo* info = m->weights->find(hf);
    ASSERT_NE(info, nullptr) << hf;
    const auto& ne = t.ne.at(g);
    EXPECT_EQ(info->shape, Shape(ne.rbegin(), ne.rend())) << hf;
  }
  EXPECT_EQ(m->weights->stored_type("model.layers.0.mlp.gate_proj.weight"), "Q8_0");
  EXPECT_EQ(m->weights->stored_type("model.layers.0.self_attn.k_proj.weight"), "F16");

  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".", hp = "model.layers." + std::to_string(l) + ".";
    // q (F32): rows un-permuted interleaved -> half-split over 4 heads.
    {
      auto v = m->weights->get(hp + "self_attn.q_proj.weight");
      ASSERT_TRUE(v) << v.status().to_string();
      EXPECT_EQ(v->info.dtype, DType::kF32);
      const auto got = view_as<float>(*v);
      const auto file = bytes_as<float>(t.bytes.at(p + "attn_q.weight"));
      for (int64_t r = 0; r < kHeads * kHeadDim; ++r)
        for (int64_t c = 0; c < kHidden; ++c)
          ASSERT_EQ(got[size_t(r * kHidden + c)], file[size_t(interleaved_row_of(r, kHeadDim) * kHidden + c)])
              << "q row " << r << " col " << c;
    }
    // k (F16): permuted over the 2 KV heads, kept in F16 bit for bit.
    {
      auto v = m->weights->get(hp + "self_attn.k_proj.weight");
      ASSERT_TRUE(v);
      EXPECT_EQ(v->info.dtype, DType::kF16);
      const auto got = view_as<uint16_t>(*v);
      const auto file = bytes_as<uint16_t>(t.bytes.at(p + "attn_k.weight"));
      for (int64_t r = 0; r < kKvHeads * kHeadDim; ++r)
        for (int64_t c = 0; c < kHidden; ++c)
          ASSERT_EQ(got[size_t(r * kHidden + c)], file[size_t(interleaved_row_of(r, kHeadDim) * kHidden + c)])
              << "k row " << r;
    }
    // q/k biases are permuted too (as llama.cpp's converter permuted them); v bias is not.
    {
      auto qb = m->weights->get(hp + "self_attn.q_proj.bias");
      ASSERT_TRUE(qb);
      const auto got = view_as<float>(*qb);
      const auto file = bytes_as<float>(t.bytes.at(p + "attn_q.bias"));
      for (int64_t r = 0; r < kHeads * kHeadDim; ++r) EXPECT_EQ(got[size_t(r)], file[size_t(interleaved_row_of(r, kHeadDim))]);
      auto vb = m->weights->get(hp + "self_attn.v_proj.bias");
      ASSERT_TRUE(vb);
      EXPECT_EQ(view_as<float>(*vb), bytes_as<float>(t.bytes.at(p + "attn_v.bias")));
      auto ob = m->weights->get(hp + "self_attn.o_proj.bias");
      ASSERT_TRUE(ob);
      EXPECT_EQ(view_as<float>(*ob), bytes_as<float>(t.bytes.at(p + "attn_output.bias")));
    }
    // v (F32) is served zero-copy: the same bytes, the same address on every call.
    {
      auto v1 = m->weights->get(hp + "self_attn.v_proj.weight");
      auto v2 = m->weights->get(hp + "self_attn.v_proj.weight");
      ASSERT_TRUE(v1 && v2);
      EXPECT_EQ(v1->data, v2->data);
      EXPECT_EQ(view_as<float>(*v1), bytes_as<float>(t.bytes.at(p + "attn_v.weight")));
    }
    // up (F16, no permutation): zero-copy in its own dtype.
    {
      auto v = m->weights->get(hp + "mlp.up_proj.weight");
      ASSERT_TRUE(v);
      EXPECT_EQ(v->info.dtype, DType::kF16);
      EXPECT_EQ(view_as<uint16_t>(*v), bytes_as<uint16_t>(t.bytes.at(p + "ffn_up.weight")));
    }
    // gate (Q8_0): dequantized to F32, d * q per block of 32.
    {
      auto v = m->weights->get(hp + "mlp.gate_proj.weight");
      ASSERT_TRUE(v);
      EXPECT_EQ(v->info.dtype, DType::kF32);
      EXPECT_EQ(v->info.shape, (Shape{kInter, kHidden}));
      const auto got = view_as<float>(*v);
      const auto& raw = t.bytes.at(p + "ffn_gate.weight");
      for (int64_t k = 0; k < kInter * kHidden; ++k) {
        const size_t blk = size_t(k / 32) * 34;
        const float d = f16_to_f32(uint16_t(raw[blk] | (raw[blk + 1] << 8)));
        const float q = float(int8_t(raw[blk + 2 + size_t(k % 32)]));
        ASSERT_EQ(got[size_t(k)], d * q) << k;
      }
    }
  }
  EXPECT_EQ(m->weights->get("model.layers.9.mlp.up_proj.weight").status().code(), StatusCode::kNotFound);

  bool has_name = false;
  for (const auto& [k, v] : m->details) has_name |= k == "general.name" && v == "\"tiny test model\"";
  EXPECT_TRUE(has_name);
}

TEST_F(Seeded, QuantizedOnlyFileDefaultsToBf16AndUntied) {
  SEED_TRACE;
  TinyOptions opt;
  opt.output = true;
  opt.up_type = kQ8_0;
  opt.k_type = kQ8_0;
  const Tiny t = make_tiny(rng, opt);
  TempDir dir;
  auto m = load_gguf(dir.write("tiny.gguf", t.file));
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_FALSE(m->spec.tie_word_embeddings);
  EXPECT_EQ(m->spec.torch_dtype, DType::kBF16);  // no F16/BF16 matrix left to say otherwise
  auto head = m->weights->get("lm_head.weight");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->info.shape, (Shape{kVocab, kHidden}));
  EXPECT_EQ(m->weights->stored_type("lm_head.weight"), "Q8_0");
  // A quantized k is dequantized first, then un-permuted.
  auto k = m->weights->get("model.layers.1.self_attn.k_proj.weight");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->info.dtype, DType::kF32);
  std::vector<float> plain(size_t(kKvHeads * kHeadDim * kHidden));
  const auto& raw = t.bytes.at("blk.1.attn_k.weight");
  ASSERT_TRUE(dequantize_ggml(GgmlType::kQ8_0, raw, int64_t(plain.size()), plain.data()).is_ok());
  const auto got = view_as<float>(*k);
  for (int64_t r = 0; r < kKvHeads * kHeadDim; ++r)
    for (int64_t c = 0; c < kHidden; ++c)
      ASSERT_EQ(got[size_t(r * kHidden + c)], plain[size_t(interleaved_row_of(r, kHeadDim) * kHidden + c)]);
}

TEST_F(Seeded, SentencePieceVocabulary) {
  SEED_TRACE;
  TinyOptions opt;
  opt.tok_model = "llama";
  TempDir dir;
  auto m = load_gguf(dir.write("spm.gguf", make_tiny(rng, opt).file));
  ASSERT_TRUE(m) << m.status().to_string();
  const auto& tok = m->tokenizer;
  EXPECT_EQ(tok.kind, TokenizerData::Kind::kSentencePiece);
  ASSERT_EQ(tok.scores.size(), size_t(kVocab));
  EXPECT_EQ(tok.scores[3], -1.5f);
  EXPECT_TRUE(tok.merges.empty());
  EXPECT_TRUE(tok.add_bos);  // llama.cpp's default for SentencePiece when the key is absent
  EXPECT_EQ(tok.bos_id, 1);
}

TEST_F(Seeded, Qwen2IsNotPermuted) {
  SEED_TRACE;
  TinyOptions opt;
  opt.arch = "qwen2";
  opt.bias = true;
  const Tiny t = make_tiny(rng, opt);
  TempDir dir;
  auto m = load_gguf(dir.write("qwen.gguf", t.file));
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->spec.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(m->spec.model_type, "qwen2");
  EXPECT_TRUE(m->spec.attention_bias);
  auto q = m->weights->get("model.layers.0.self_attn.q_proj.weight");
  ASSERT_TRUE(q);
  EXPECT_EQ(view_as<float>(*q), bytes_as<float>(t.bytes.at("blk.0.attn_q.weight")));
  auto kb = m->weights->get("model.layers.1.self_attn.k_proj.bias");
  ASSERT_TRUE(kb);
  EXPECT_EQ(kb->info.shape, (Shape{kKvHeads * kHeadDim}));
  EXPECT_EQ(view_as<float>(*kb), bytes_as<float>(t.bytes.at("blk.1.attn_k.bias")));
}

// llama3 RoPE factors as HF computes them (written out here independently of the loader).
std::vector<float> llama3_factors(double theta, int64_t head_dim, double factor) {
  const double low = 1.0, high = 4.0, orig = 8192.0;
  std::vector<float> f;
  for (int64_t k = 0; k < head_dim / 2; ++k) {
    const double inv_freq = 1.0 / std::pow(theta, double(2 * k) / double(head_dim));
    const double wavelen = 2 * std::numbers::pi / inv_freq;
    if (wavelen < orig / high) {
      f.push_back(1.0f);
    } else if (wavelen > orig / low) {
      f.push_back(float(factor));
    } else {
      const double smooth = (orig / wavelen - low) / (high - low);
      f.push_back(float(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return f;
}

TEST_F(Seeded, Llama3RopeScalingFromRopeFreqs) {
  SEED_TRACE;
  TinyOptions opt;
  opt.rope_theta = 500000.0f;
  opt.rope_freqs = llama3_factors(500000.0, kHeadDim, 8.0);
  TempDir dir;
  auto m = load_gguf(dir.write("l3.gguf", make_tiny(rng, opt).file));
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->spec.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(m->spec.rope_scaling.factor, 8.0);
  EXPECT_EQ(m->spec.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(m->weights->contains("rope_freqs.weight"));

  opt.rope_freqs[1] *= 1.5f;  // not a llama3 curve any more
  auto bad = load_gguf(dir.write("l3bad.gguf", make_tiny(rng, opt).file));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(bad.status().message().find("rope_freqs.weight"), std::string::npos);
}

void expect_load_error(const std::vector<uint8_t>& bytes, StatusCode code, const std::string& needle) {
  TempDir dir;
  const auto path = dir.write("bad.gguf", bytes);
  auto m = load_gguf(path);
  ASSERT_FALSE(m) << "expected an error mentioning " << needle;
  EXPECT_EQ(m.status().code(), code) << m.status().to_string();
  EXPECT_NE(m.status().message().find(path.string()), std::string::npos) << m.status().to_string();
  EXPECT_NE(m.status().message().find(needle), std::string::npos) << m.status().to_string();
}

TEST_F(Seeded, BadModelsAreRefusedWithClearErrors) {
  SEED_TRACE;
  {
    TinyOptions o;
    o.arch = "gemma";
    expect_load_error(make_tiny(rng, o).file, StatusCode::kUnsupported, "'gemma'");
  }
  {
    TinyOptions o;
    o.drop_key = "llama.block_count";
    expect_load_error(make_tiny(rng, o).file, StatusCode::kCorrupt, "llama.block_count");
  }
  {
    TinyOptions o;
    o.drop_key = "llama.attention.layer_norm_rms_epsilon";
    expect_load_error(make_tiny(rng, o).file, StatusCode::kCorrupt, "layer_norm_rms_epsilon");
  }
  {
    TinyOptions o;
    o.wrong_shape_tensor = "blk.0.attn_q.weight";
    expect_load_error(make_tiny(rng, o).file, StatusCode::kCorrupt, "blk.0.attn_q.weight");
  }
  {
    TinyOptions o;
    o.drop_tensor = "blk.1.ffn_up.weight";
    expect_load_error(make_tiny(rng, o).file, StatusCode::kCorrupt, "blk.1.ffn_up.weight");
  }
  {
    TinyOptions o;
    o.n_tokens = kVocab - 1;
    expect_load_error(make_tiny(rng, o).file, StatusCode::kCorrupt, "tokenizer.ggml.tokens");
  }
  {
    TinyOptions o;
    o.up_type = kIQ4_NL;
    expect_load_error(make_tiny(rng, o).file, StatusCode::kUnsupported, "IQ4_NL");
  }
  {  // A weight with no HF counterpart must not be dropped silently.
    TinyOptions o;
    o.extra_tensor = "blk.0.ffn_up.bias";
    expect_load_error(make_tiny(rng, o).file, StatusCode::kUnsupported, "blk.0.ffn_up.bias");
  }
  {  // A layer beyond block_count.
    GgufBuilder b;
    b.kv_string("general.architecture", "llama");
    for (const char* k : {"llama.block_count", "llama.embedding_length", "llama.feed_forward_length",
                          "llama.attention.head_count"})
      b.kv_u32(k, 4);
    b.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
    b.tensor("token_embd.weight", {4, 3}, kF32, std::vector<uint8_t>(48, 0x3c));
    b.tensor("blk.7.attn_norm.weight", {4}, kF32, std::vector<uint8_t>(16, 0x3c));
    expect_load_error(b.build().bytes, StatusCode::kCorrupt, "blk.7.attn_norm.weight");
  }
  {  // A GGUF whose header is fine but which is not a model at all.
    GgufBuilder b;
    b.kv_string("general.name", "no architecture");
    expect_load_error(b.build().bytes, StatusCode::kCorrupt, "general.architecture");
  }
}

TEST_F(Seeded, TruncatedAndDamagedFilesGiveStatusErrors) {
  SEED_TRACE;
  const Tiny t = make_tiny(rng);
  TempDir dir;
  // Every cut inside the metadata, every 3rd through the tensor infos and the first tensor, then
  // every 211th byte of the data.
  std::vector<size_t> cuts;
  const size_t dense = std::min<size_t>(t.data_offset, 900);
  for (size_t n = 0; n < dense; ++n) cuts.push_back(n);
  for (size_t n = dense; n < t.data_offset + 64; n += 3) cuts.push_back(n);
  for (size_t n = t.data_offset + 64; n < t.file.size(); n += 211) cuts.push_back(n);
  cuts.push_back(t.file.size() - 1);
  for (size_t n : cuts) {
    const auto path = dir.write("cut.gguf", std::vector<uint8_t>(t.file.begin(), t.file.begin() + n));
    auto m = load_gguf(path);
    ASSERT_FALSE(m) << "a " << n << "-byte prefix of " << t.file.size() << " loaded";
    EXPECT_NE(m.status().message().find(path.string()), std::string::npos) << m.status().to_string();
  }
  // Random damage to header bytes: a Status or a model whose every tensor can be fetched.
  int refused = 0;
  for (int iter = 0; iter < 150; ++iter) {
    auto v = t.file;
    const int hits = 1 + int(rng() % 3);
    for (int h = 0; h < hits; ++h) v[rng() % t.data_offset] = uint8_t(rng());
    auto m = load_gguf(dir.write("dmg.gguf", v));
    if (!m) {
      ++refused;
      continue;
    }
    for (const auto& info : m->weights->tensors()) {
      auto w = m->weights->get(info.name);
      if (w) {
        EXPECT_EQ(w->info.shape, info.shape);
      }
    }
  }
  EXPECT_GT(refused, 0);
}

std::filesystem::path smollm_path() {
  return test::models_dir() / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(GgufLoaderReal, SmolLM2) {
  const auto path = smollm_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent (scripts/fetch-models.sh makes it)";
  auto m = load_gguf(path);
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelSpec& s = m->spec;
  EXPECT_EQ(s.architecture, "LlamaForCausalLM");
  EXPECT_EQ(s.hidden_size, 576);
  EXPECT_EQ(s.num_layers, 30);
  EXPECT_EQ(s.num_heads, 9);
  EXPECT_EQ(s.num_kv_heads, 3);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.intermediate_size, 1536);
  EXPECT_EQ(s.vocab_size, 49152);
  EXPECT_TRUE(s.tie_word_embeddings);
  EXPECT_FALSE(s.attention_bias);
  EXPECT_EQ(s.rope_theta, 100000.0);
  EXPECT_EQ(s.rms_norm_eps, 1e-5);
  EXPECT_EQ(s.max_position_embeddings, 8192);
  EXPECT_EQ(s.torch_dtype, DType::kBF16);  // every matrix is quantized
  EXPECT_EQ(s.bos_token_id, 1);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{2}));

  const auto& tok = m->tokenizer;
  EXPECT_EQ(tok.kind, TokenizerData::Kind::kGpt2Bpe);
  EXPECT_EQ(tok.tokens.size(), 49152u);
  EXPECT_EQ(tok.token_types.size(), 49152u);
  EXPECT_EQ(tok.merges.size(), 48900u);
  EXPECT_EQ(tok.merges[0], "Ġ t");
  EXPECT_EQ(tok.pre, "smollm");
  EXPECT_EQ(tok.tokens[2], "<|im_end|>");
  EXPECT_FALSE(tok.add_bos);
  EXPECT_NE(tok.chat_template.find("<|im_start|>"), std::string::npos);

  // Every tensor: the shape the spec implies, finite values.
  const auto& infos = m->weights->tensors();
  EXPECT_EQ(infos.size(), 2u + 30u * 9u);
  for (const auto& info : infos) {
    Shape expect;
    if (info.name == "model.embed_tokens.weight") {
      expect = {49152, 576};
    } else if (info.name == "model.norm.weight" || info.name.ends_with("layernorm.weight")) {
      expect = {576};
    } else {
      bool found = false;
      for (int mi = 0; mi < kNumModules && !found; ++mi) {
        const std::string layer = info.name.substr(0, info.name.find(".", 13) + 1);  // "model.layers.N."
        const int64_t l = std::stoll(layer.substr(13));
        if (info.name == module_hf_prefix(l, Module(mi)) + ".weight") {
          const auto [out, in] = module_shape(s, Module(mi));
          expect = {out, in};
          found = true;
        }
      }
      ASSERT_TRUE(found) << info.name;
    }
    EXPECT_EQ(info.shape, expect) << info.name;
    auto v = m->weights->get(info.name);
    ASSERT_TRUE(v) << v.status().to_string();
    EXPECT_EQ(v->info.shape, info.shape);
    const TensorView f = to_f32(*v);
    const float* p = f.as<float>();
    double sum_sq = 0;
    int64_t non_finite = 0;
    for (int64_t k = 0; k < f.numel(); ++k) {
      non_finite += !std::isfinite(p[k]);
      sum_sq += double(p[k]) * p[k];
    }
    EXPECT_EQ(non_finite, 0) << info.name;
    EXPECT_GT(sum_sq, 0.0) << info.name;  // real weights, not zeros
  }
  EXPECT_EQ(m->weights->stored_type("model.layers.0.self_attn.q_proj.weight"), "Q4_1");
  EXPECT_EQ(m->weights->stored_type("model.embed_tokens.weight"), "Q8_0");
  EXPECT_EQ(m->weights->stored_type("model.norm.weight"), "F32");

  // q of layer 5: the served rows are the file's rows, dequantized independently here and moved
  // from the interleaved position.
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f);
  const GgufTensorInfo* gq = (*f)->find_tensor("blk.5.attn_q.weight");
  ASSERT_NE(gq, nullptr);
  std::vector<float> raw(size_t(gq->numel()));
  ASSERT_TRUE(dequantize_ggml(gq->type, (*f)->tensor_data(*gq), gq->numel(), raw.data()).is_ok());
  auto q = m->weights->get("model.layers.5.self_attn.q_proj.weight");
  ASSERT_TRUE(q);
  const float* served = q->as<float>();
  int64_t mismatches = 0;
  for (int64_t r = 0; r < 576; ++r)
    for (int64_t c = 0; c < 576; ++c)
      mismatches += served[r * 576 + c] != raw[size_t(interleaved_row_of(r, 64) * 576 + c)];
  EXPECT_EQ(mismatches, 0);

  // get() from several threads at once gives the same numbers as one thread.
  std::vector<std::string> names = {"model.layers.3.self_attn.k_proj.weight", "model.layers.7.mlp.up_proj.weight",
                                    "model.layers.11.self_attn.q_proj.weight", "model.layers.29.mlp.down_proj.weight"};
  std::vector<std::vector<float>> solo, multi(names.size());
  for (const auto& n : names) solo.push_back(view_as<float>(*m->weights->get(n)));
  std::vector<std::thread> threads;
  for (size_t k = 0; k < names.size(); ++k)
    threads.emplace_back([&, k] { multi[k] = view_as<float>(*m->weights->get(names[k])); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(solo, multi);
}

}  // namespace
}  // namespace rtnq
