// llama2.c checkpoints: synthetic files with random sizes and weights (every tensor found where run.c
// reads it, q/k permuted so half-split RoPE equals run.c's interleaved RoPE), malformed files refused
// with messages naming the file, and the real stories260K checkpoint.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/llama2c-tokenizer.h"
#include "model/loaders.h"
#include "rtnq/model.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace rtnq;

namespace {

using rtnq::test::models_dir;

// Scratch folders named after this test.
struct TempDir : rtnq::test::TempDir {
  TempDir() : rtnq::test::TempDir("rtnq-l2c") {}
};

struct Config {
  int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
  bool shared;
  int32_t head_size() const { return dim / heads; }
  int32_t kv_dim() const { return kv_heads * head_size(); }
};

// The arrays of a checkpoint in file order, filled with random values, kept for comparison.
struct Checkpoint {
  Config c;
  std::vector<float> embed, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_real, freq_imag, wcls;
};

Checkpoint make_checkpoint(const Config& c, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto fill = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng);
    return v;
  };
  Checkpoint k;
  k.c = c;
  const size_t L = size_t(c.layers), D = size_t(c.dim), H = size_t(c.hidden), KV = size_t(c.kv_dim()), V = size_t(c.vocab);
  k.embed = fill(V * D);
  k.rms_att = fill(L * D);
  k.wq = fill(L * D * D);
  k.wk = fill(L * KV * D);
  k.wv = fill(L * KV * D);
  k.wo = fill(L * D * D);
  k.rms_ffn = fill(L * D);
  k.w1 = fill(L * H * D);
  k.w2 = fill(L * D * H);
  k.w3 = fill(L * H * D);
  k.rms_final = fill(D);
  k.freq_real = fill(size_t(c.seq_len) * size_t(c.head_size() / 2));
  k.freq_imag = fill(size_t(c.seq_len) * size_t(c.head_size() / 2));
  if (!c.shared) k.wcls = fill(V * D);
  return k;
}

std::vector<char> serialize(const Checkpoint& k) {
  std::vector<char> bytes;
  auto put = [&](const void* p, size_t n) { bytes.insert(bytes.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n); };
  const int32_t header[7] = {k.c.dim, k.c.hidden, k.c.layers, k.c.heads, k.c.kv_heads, k.c.shared ? k.c.vocab : -k.c.vocab, k.c.seq_len};
  put(header, sizeof header);
  for (const auto* v : {&k.embed, &k.rms_att, &k.wq, &k.wk, &k.wv, &k.wo, &k.rms_ffn, &k.w1, &k.w2, &k.w3, &k.rms_final,
                        &k.freq_real, &k.freq_imag, &k.wcls})
    put(v->data(), v->size() * 4);
  return bytes;
}

void write_file(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A llama2.c tokenizer of `vocab` tokens as llama2.c's exporter writes it.
std::vector<char> make_tokenizer_file(int32_t vocab, std::mt19937& rng) {
  std::vector<char> bytes;
  auto put = [&](const void* p, size_t n) { bytes.insert(bytes.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n); };
  std::vector<std::string> toks = {"<unk>", "\n<s>\n", "\n</s>\n"};
  for (int i = 0; int32_t(toks.size()) < vocab && i < 256; ++i) toks.push_back(fmt::format("<0x{:02X}>", i));
  std::uniform_int_distribution<int> letter('a', 'z');
  while (int32_t(toks.size()) < vocab) toks.push_back(std::string(1, ' ') + char(letter(rng)) + char(letter(rng)) + std::to_string(toks.size()));
  int32_t max_len = 0;
  for (auto& t : toks) max_len = std::max(max_len, int32_t(t.size()));
  put(&max_len, 4);
  for (size_t i = 0; i < toks.size(); ++i) {
    const float score = -float(i);
    const auto len = int32_t(toks[i].size());
    put(&score, 4);
    put(&len, 4);
    put(toks[i].data(), toks[i].size());
  }
  return bytes;
}

Config random_config(std::mt19937& rng, bool shared) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Config c{};
  c.kv_heads = pick(1, 3);
  c.heads = c.kv_heads * pick(1, 3);
  c.dim = c.heads * 2 * pick(1, 4);  // even head size
  c.hidden = pick(3, 40);
  c.layers = pick(1, 3);
  c.vocab = pick(260, 300);
  c.seq_len = pick(1, 16);
  c.shared = shared;
  return c;
}

const float* layer_slice(const std::vector<float>& v, int32_t layer, size_t per_layer) { return v.data() + size_t(layer) * per_layer; }

void expect_equal(const TensorView& v, const float* expected, size_t n, const std::string& what) {
  ASSERT_EQ(v.info.dtype, DType::kF32) << what;
  ASSERT_EQ(size_t(v.numel()), n) << what;
  EXPECT_EQ(std::memcmp(v.data, expected, n * 4), 0) << what << " differs from the file's array";
}

// run.c's RoPE on one head: rotates pairs (2i, 2i+1) by pos * theta^(-2i/hd).
void rope_interleaved(std::vector<float>& x, int pos, int hd) {
  for (int i = 0; i < hd; i += 2) {
    const float freq = 1.0f / std::pow(10000.0f, float(i) / float(hd));
    const float a = float(pos) * freq, c = std::cos(a), s = std::sin(a);
    const float x0 = x[size_t(i)], x1 = x[size_t(i) + 1];
    x[size_t(i)] = x0 * c - x1 * s;
    x[size_t(i) + 1] = x0 * s + x1 * c;
  }
}

// Hugging Face's rotate_half RoPE: pairs (i, i + hd/2) share frequency theta^(-2i/hd).
void rope_half_split(std::vector<float>& x, int pos, int hd) {
  for (int i = 0; i < hd / 2; ++i) {
    const float freq = 1.0f / std::pow(10000.0f, float(2 * i) / float(hd));
    const float a = float(pos) * freq, c = std::cos(a), s = std::sin(a);
    const float x0 = x[size_t(i)], x1 = x[size_t(i + hd / 2)];
    x[size_t(i)] = x0 * c - x1 * s;
    x[size_t(i + hd / 2)] = x0 * s + x1 * c;
  }
}

// Rows [row0, row0 + hd) of w [*, cols] times x.
std::vector<float> head_matvec(const float* w, int64_t row0, int hd, const std::vector<float>& x) {
  std::vector<float> out(size_t(hd), 0.0f);
  for (int r = 0; r < hd; ++r)
    for (size_t j = 0; j < x.size(); ++j) out[size_t(r)] += w[(size_t(row0) + size_t(r)) * x.size() + j] * x[j];
  return out;
}

class Llama2cSynthetic : public ::testing::TestWithParam<bool> {};

TEST_P(Llama2cSynthetic, ServesEveryArrayUnderHfNames) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const bool shared = GetParam();
  const Config c = random_config(rng, shared);
  SCOPED_TRACE(fmt::format("dim {} hidden {} layers {} heads {} kv {} vocab {} seq {}", c.dim, c.hidden, c.layers, c.heads,
                           c.kv_heads, c.vocab, c.seq_len));
  const Checkpoint k = make_checkpoint(c, rng);
  TempDir dir;
  const fs::path file = dir.path() / "model.bin";
  write_file(file, serialize(k));
  write_file(dir.path() / fmt::format("tok{}.bin", c.vocab), make_tokenizer_file(c.vocab, rng));

  auto loaded = load_model(file);
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  const LoadedModel& m = *loaded;
  EXPECT_EQ(m.format, SourceFormat::kLlama2c);
  const ModelSpec& s = m.spec;
  EXPECT_EQ(s.hidden_size, c.dim);
  EXPECT_EQ(s.intermediate_size, c.hidden);
  EXPECT_EQ(s.num_layers, c.layers);
  EXPECT_EQ(s.num_heads, c.heads);
  EXPECT_EQ(s.num_kv_heads, c.kv_heads);
  EXPECT_EQ(s.head_dim, c.head_size());
  EXPECT_EQ(s.vocab_size, c.vocab);
  EXPECT_EQ(s.max_position_embeddings, c.seq_len);
  EXPECT_EQ(s.tie_word_embeddings, shared);
  EXPECT_EQ(s.rope_layout, RopeLayout::kHalfSplit);
  EXPECT_EQ(s.torch_dtype, DType::kF32);
  EXPECT_EQ(s.bos_token_id, 1);
  ASSERT_EQ(s.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_DOUBLE_EQ(s.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(s.rms_norm_eps, 1e-5);
  EXPECT_EQ(m.tokenizer.kind, TokenizerData::Kind::kSentencePiece);
  EXPECT_EQ(int32_t(m.tokenizer.tokens.size()), c.vocab);

  const WeightSource& w = *m.weights;
  EXPECT_EQ(w.tensors().size(), size_t(1 + 9 * c.layers + 1 + (shared ? 0 : 1)));
  EXPECT_EQ(w.contains("lm_head.weight"), !shared);
  const size_t D = size_t(c.dim), H = size_t(c.hidden), KV = size_t(c.kv_dim());
  auto get = [&](const std::string& n) {
    auto v = w.get(n);
    EXPECT_TRUE(v) << n << ": " << v.status().to_string();
    return v ? *v : TensorView{};
  };
  expect_equal(get("model.embed_tokens.weight"), k.embed.data(), k.embed.size(), "embed");
  expect_equal(get("model.norm.weight"), k.rms_final.data(), D, "norm");
  if (!shared) expect_equal(get("lm_head.weight"), k.wcls.data(), k.wcls.size(), "lm_head");
  EXPECT_FALSE(w.get("model.layers.99.self_attn.q_proj.weight"));

  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int hd = c.head_size();
  for (int32_t l = 0; l < c.layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    SCOPED_TRACE(p);
    expect_equal(get(p + "input_layernorm.weight"), layer_slice(k.rms_att, l, D), D, "rms_att");
    expect_equal(get(p + "post_attention_layernorm.weight"), layer_slice(k.rms_ffn, l, D), D, "rms_ffn");
    expect_equal(get(p + "self_attn.v_proj.weight"), layer_slice(k.wv, l, KV * D), KV * D, "wv");
    expect_equal(get(p + "self_attn.o_proj.weight"), layer_slice(k.wo, l, D * D), D * D, "wo");
    expect_equal(get(p + "mlp.gate_proj.weight"), layer_slice(k.w1, l, H * D), H * D, "w1");
    expect_equal(get(p + "mlp.up_proj.weight"), layer_slice(k.w3, l, H * D), H * D, "w3");
    expect_equal(get(p + "mlp.down_proj.weight"), layer_slice(k.w2, l, D * H), D * H, "w2");
    EXPECT_EQ(w.find(p + "mlp.down_proj.weight")->shape, (Shape{c.dim, c.hidden}));
    EXPECT_EQ(w.find(p + "self_attn.k_proj.weight")->shape, (Shape{c.kv_dim(), c.dim}));

    // q/k: rows permuted, so that half-split RoPE of the served projection is run.c's interleaved
    // RoPE of the file's projection, up to the same permutation (which leaves q·k unchanged).
    const TensorView q = get(p + "self_attn.q_proj.weight");
    const TensorView kk = get(p + "self_attn.k_proj.weight");
    ASSERT_EQ(q.info.shape, (Shape{c.dim, c.dim}));
    const float* q_file = layer_slice(k.wq, l, D * D);
    const float* k_file = layer_slice(k.wk, l, KV * D);
    std::vector<float> x(D);
    for (float& v : x) v = nd(rng);
    const int pos_q = std::uniform_int_distribution<int>(0, c.seq_len - 1)(rng);
    const int pos_k = std::uniform_int_distribution<int>(0, pos_q)(rng);
    for (int h = 0; h < c.heads; ++h) {
      const int kvh = h / (c.heads / c.kv_heads);
      auto qi = head_matvec(q_file, int64_t(h) * hd, hd, x), ki = head_matvec(k_file, int64_t(kvh) * hd, hd, x);
      auto qh = head_matvec(q.as<float>(), int64_t(h) * hd, hd, x), kh = head_matvec(kk.as<float>(), int64_t(kvh) * hd, hd, x);
      // Row permutation itself: served row i < hd/2 is file row 2i, row hd/2 + i is file row 2i + 1.
      for (int i = 0; i < hd / 2; ++i) {
        EXPECT_EQ(qh[size_t(i)], qi[size_t(2 * i)]);
        EXPECT_EQ(qh[size_t(hd / 2 + i)], qi[size_t(2 * i + 1)]);
      }
      rope_interleaved(qi, pos_q, hd);
      rope_interleaved(ki, pos_k, hd);
      rope_half_split(qh, pos_q, hd);
      rope_half_split(kh, pos_k, hd);
      double dot_file = 0, dot_served = 0, scale = 0;
      for (int i = 0; i < hd; ++i) {
        dot_file += double(qi[size_t(i)]) * ki[size_t(i)];
        dot_served += double(qh[size_t(i)]) * kh[size_t(i)];
        scale += std::abs(double(qi[size_t(i)]) * ki[size_t(i)]);
      }
      // Same products summed in another order: fp32 rounding of the rotations only.
      EXPECT_NEAR(dot_file, dot_served, 1e-5 * (scale + 1)) << "head " << h;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedAndSeparateClassifier, Llama2cSynthetic, ::testing::Bool());

TEST(Llama2cLoader, SizeMismatchIsCorruptAndNamesTheFile) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const Config c = random_config(rng, true);
  const std::vector<char> good = serialize(make_checkpoint(c, rng));
  TempDir dir;
  for (long delta : {-4L, -1L, 1L, 4L, -long(good.size()) + 28}) {
    std::vector<char> bytes = good;
    if (delta < 0) bytes.resize(size_t(long(bytes.size()) + delta));
    else bytes.insert(bytes.end(), size_t(delta), '\x7f');
    const fs::path file = dir.path() / "bad.bin";
    write_file(file, bytes);
    auto m = load_llama2c(file);
    ASSERT_FALSE(m) << "size delta " << delta;
    EXPECT_EQ(m.status().code(), StatusCode::kCorrupt);
    const std::string msg = m.status().message();
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(fmt::format("expected {} bytes", good.size())), std::string::npos) << msg;
    EXPECT_NE(msg.find(fmt::format("found {}", bytes.size())), std::string::npos) << msg;
    // load_model reaches the same loader and reports the same error.
    auto via_dispatch = load_model(file);
    ASSERT_FALSE(via_dispatch);
    EXPECT_EQ(via_dispatch.status().code(), StatusCode::kCorrupt) << via_dispatch.status().to_string();
  }
}

TEST(Llama2cLoader, NonsenseHeadersAreRefused) {
  TempDir dir;
  const int32_t cases[][7] = {
      {0, 172, 5, 8, 4, 512, 512},           // dim 0
      {64, -3, 5, 8, 4, 512, 512},           // negative hidden
      {64, 172, 5, 7, 7, 512, 512},          // heads do not divide dim
      {64, 172, 5, 8, 3, 512, 512},          // kv heads do not divide heads
      {64, 172, 5, 64, 64, 512, 512},        // odd head size (1)
      {1 << 30, 172, 5, 8, 4, 512, 512},     // huge dim
      {64, 172, 1 << 20, 8, 4, 512, 512},    // huge layer count
      {64, 172, 5, 8, 4, 0, 512},            // no vocab
      {64, 172, 5, 8, 4, 512, 0},            // no seq_len
      {64, 172, 5, 8, 4, INT32_MIN, 512},    // |vocab| overflows
  };
  for (const auto& h : cases) {
    const fs::path file = dir.path() / "hdr.bin";
    std::vector<char> bytes(reinterpret_cast<const char*>(h), reinterpret_cast<const char*>(h) + 28);
    bytes.resize(4096, '\0');
    write_file(file, bytes);
    auto m = load_llama2c(file);
    ASSERT_FALSE(m) << fmt::format("header {}", fmt::join(h, ","));
    EXPECT_EQ(m.status().code(), StatusCode::kCorrupt);
    EXPECT_NE(m.status().message().find(file.string()), std::string::npos) << m.status().message();
  }
  // Shorter than a header.
  const fs::path tiny = dir.path() / "tiny.bin";
  write_file(tiny, std::vector<char>(10, '\1'));
  auto m = load_llama2c(tiny);
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find("28-byte"), std::string::npos) << m.status().message();
}

TEST(Llama2cLoader, BadTokenizerBesideCheckpointIsReported) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const Config c = random_config(rng, true);
  TempDir dir;
  const fs::path file = dir.path() / "model.bin";
  write_file(file, serialize(make_checkpoint(c, rng)));
  // No tokenizer: loads, kind kNone.
  auto m = load_llama2c(file);
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->tokenizer.kind, TokenizerData::Kind::kNone);
  // A tokenizer for another vocabulary size: refused, naming it.
  write_file(dir.path() / "tokenizer.bin", make_tokenizer_file(c.vocab + 5, rng));
  m = load_llama2c(file);
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find("tokenizer.bin"), std::string::npos) << m.status().message();
}

TEST(Llama2cTokenizer, ReadsAndRefusesMalformedFiles) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const int32_t vocab = std::uniform_int_distribution<int32_t>(260, 400)(rng);
  const std::vector<char> good = make_tokenizer_file(vocab, rng);
  TempDir dir;
  const fs::path file = dir.path() / "tok.bin";
  write_file(file, good);
  auto t = load_llama2c_tokenizer(file);
  ASSERT_TRUE(t) << t.status().to_string();
  ASSERT_EQ(int32_t(t->tokens.size()), vocab);
  EXPECT_EQ(t->tokens[1], "<s>");
  EXPECT_EQ(t->tokens[2], "</s>");
  EXPECT_EQ(t->token_types[0], kTokenUnknown);
  EXPECT_EQ(t->token_types[1], kTokenControl);
  EXPECT_EQ(t->token_types[3], kTokenByte);
  EXPECT_EQ(byte_token_value(t->tokens[3 + 0xA7]), 0xA7);
  EXPECT_EQ(t->tokens[259].rfind("\xE2\x96\x81", 0), 0u) << "spaces become U+2581";
  EXPECT_FLOAT_EQ(t->scores[100], -100.0f);

  // Truncated anywhere after the header: refused with the file name.
  for (int trial = 0; trial < 20; ++trial) {
    const size_t cut = std::uniform_int_distribution<size_t>(5, good.size() - 1)(rng);
    std::vector<char> bytes(good.begin(), good.begin() + long(cut));
    write_file(file, bytes);
    auto bad = load_llama2c_tokenizer(file, vocab);
    ASSERT_FALSE(bad) << "cut at " << cut;
    EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
    EXPECT_NE(bad.status().message().find(file.string()), std::string::npos);
  }
  // A negative length.
  std::vector<char> neg = good;
  const int32_t minus = -5;
  std::memcpy(neg.data() + 4 + 4, &minus, 4);  // token 0's length
  write_file(file, neg);
  auto bad = load_llama2c_tokenizer(file);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("length -5"), std::string::npos) << bad.status().message();
  // More tokens than the model's vocabulary.
  write_file(file, good);
  bad = load_llama2c_tokenizer(file, vocab - 1);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("bytes left"), std::string::npos) << bad.status().message();
}

TEST(LoadModel, RefusesUnknownInputsListingAcceptedForms) {
  TempDir dir;
  auto missing = load_model(dir.path() / "nope.bin");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("GGUF"), std::string::npos);

  const fs::path text = dir.path() / "notes.txt";
  write_file(text, std::vector<char>({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'}));
  auto m = load_model(text);
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find(text.string()), std::string::npos);
  EXPECT_NE(m.status().message().find("llama2.c"), std::string::npos);
}

// The real checkpoint shipped beside the project (README facts of shared/).
TEST(Llama2cLoader, Stories260K) {
  const fs::path file = models_dir() / "stories260K/stories260K.bin";
  if (!fs::exists(file)) GTEST_SKIP() << file << " missing (run scripts/fetch-models.sh)";
  auto loaded = load_model(file);
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  const ModelSpec& s = loaded->spec;
  EXPECT_EQ(s.hidden_size, 64);
  EXPECT_EQ(s.intermediate_size, 172);
  EXPECT_EQ(s.num_layers, 5);
  EXPECT_EQ(s.num_heads, 8);
  EXPECT_EQ(s.num_kv_heads, 4);
  EXPECT_EQ(s.head_dim, 8);
  EXPECT_EQ(s.vocab_size, 512);
  EXPECT_EQ(s.max_position_embeddings, 512);
  EXPECT_TRUE(s.tie_word_embeddings);
  const TokenizerData& t = loaded->tokenizer;
  ASSERT_EQ(t.kind, TokenizerData::Kind::kSentencePiece);
  ASSERT_EQ(t.tokens.size(), 512u);
  EXPECT_EQ(t.tokens[1], "<s>");
  EXPECT_EQ(t.tokens[2], "</s>");
  for (int i = 3; i <= 258; ++i) EXPECT_EQ(byte_token_value(t.tokens[size_t(i)]), i - 3) << t.tokens[size_t(i)];
  // Embedding rows are the file's first array, zero-copy.
  auto emb = loaded->weights->get("model.embed_tokens.weight");
  ASSERT_TRUE(emb);
  std::ifstream in(file, std::ios::binary);
  std::vector<float> first(64 * 3);
  in.seekg(28);
  in.read(reinterpret_cast<char*>(first.data()), std::streamsize(first.size() * 4));
  EXPECT_EQ(std::memcmp(emb->data, first.data(), first.size() * 4), 0);
  // Parameter count from the tensors: 260K by name.
  int64_t params = 0;
  for (const auto& ti : loaded->weights->tensors()) params += ti.numel();
  EXPECT_EQ(params, 512 * 64 + 5 * (64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 + 3 * 172 * 64) + 64);
}

}  // namespace
