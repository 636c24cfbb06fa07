// Each CPU op against a naive double-precision version written here, on fresh random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "rtnq/dtype.h"

namespace rtnq::cpu {
namespace {

struct Rng {
  uint32_t seed = std::random_device{}();
  std::mt19937 gen{seed};
  std::vector<float> normal(size_t n, float sd = 1.0f) {
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = d(gen);
    return v;
  }
  int64_t uniform_int(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }
  std::string trace() const { return "seed " + std::to_string(seed); }
};

// Relative tolerance for fp32 accumulation over up to a few thousand terms against double.
constexpr double kTol = 2e-5;

void expect_close(const std::vector<double>& want, const float* got, double tol, double scale = 1.0) {
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * std::max(scale, std::abs(want[i]))) << "index " << i;
}

TEST(CpuOps, RmsnormMatchesDouble) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (int64_t n : {1, 7, 64, 576, 1000}) {
    auto x = rng.normal(size_t(n), 3.0f), w = rng.normal(size_t(n));
    const float eps = 1e-5f;
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double inv = 1.0 / std::sqrt(ss / double(n) + eps);
    std::vector<double> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = double(x[size_t(i)]) * inv * w[size_t(i)];
    std::vector<float> out(static_cast<size_t>(n));
    rmsnorm(x.data(), w.data(), out.data(), n, eps);
    expect_close(want, out.data(), kTol);
    // Aliasing input and output is how the engine may call it.
    rmsnorm(x.data(), w.data(), x.data(), n, eps);
    expect_close(want, x.data(), kTol);
  }
}

TEST(CpuOps, SoftmaxMatchesDoubleAndSumsToOne) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (int64_t n : {1, 3, 100, 4097}) {
    auto x = rng.normal(size_t(n), 10.0f);
    x[0] += 80.0f;  // large logits must not overflow
    double mx = -1e300, sum = 0;
    for (float v : x) mx = std::max(mx, double(v));
    for (float v : x) sum += std::exp(double(v) - mx);
    std::vector<double> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = std::exp(double(x[size_t(i)]) - mx) / sum;
    softmax(x.data(), n);
    expect_close(want, x.data(), 1e-5, 1e-30);
    double total = 0;
    for (float v : x) total += v;
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
}

TEST(CpuOps, SwigluMatchesDouble) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t n = 1000;
  auto g = rng.normal(size_t(n), 4.0f), u = rng.normal(size_t(n));
  std::vector<double> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double gd = g[size_t(i)];
    want[size_t(i)] = gd / (1.0 + std::exp(-gd)) * u[size_t(i)];
  }
  std::vector<float> out(static_cast<size_t>(n));
  swiglu(g.data(), u.data(), out.data(), n);
  expect_close(want, out.data(), 1e-6, 1e-6);
}

TEST(CpuOps, BiasAndResidual) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  auto x = rng.normal(37), b = rng.normal(37);
  auto y = x;
  add_bias(y.data(), b.data(), 37);
  for (size_t i = 0; i < 37; ++i) EXPECT_EQ(y[i], x[i] + b[i]);
  add_inplace(y.data(), b.data(), 37);
  for (size_t i = 0; i < 37; ++i) EXPECT_EQ(y[i], (x[i] + b[i]) + b[i]);
}

TEST(CpuOps, EmbeddingLookupAllDtypes) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t vocab = 50, dim = 24;
  auto table = rng.normal(size_t(vocab * dim));
  std::vector<uint16_t> bf(table.size()), hf(table.size());
  for (size_t i = 0; i < table.size(); ++i) bf[i] = f32_to_bf16(table[i]), hf[i] = f32_to_f16(table[i]);
  const int64_t tok = rng.uniform_int(0, vocab - 1);
  std::vector<float> out(static_cast<size_t>(dim));
  embedding_lookup(table.data(), DType::kF32, dim, tok, out.data());
  for (int64_t i = 0; i < dim; ++i) EXPECT_EQ(out[size_t(i)], table[size_t(tok * dim + i)]);
  embedding_lookup(bf.data(), DType::kBF16, dim, tok, out.data());
  for (int64_t i = 0; i < dim; ++i) EXPECT_EQ(out[size_t(i)], bf16_to_f32(bf[size_t(tok * dim + i)]));
  embedding_lookup(hf.data(), DType::kF16, dim, tok, out.data());
  for (int64_t i = 0; i < dim; ++i) EXPECT_EQ(out[size_t(i)], f16_to_f32(hf[size_t(tok * dim + i)]));
}

// HF's _compute_default_rope_parameters / _compute_llama3_parameters, restated in double.
std::vector<double> ref_inv_freq(int64_t d, double theta, const RopeScaling& s) {
  std::vector<double> out;
  for (int64_t i = 0; i < d; i += 2) {
    double f = std::pow(theta, -double(i) / double(d));
    if (s.type == RopeScaling::Type::kLinear) f = f / s.factor;
    if (s.type == RopeScaling::Type::kLlama3) {
      const double wl = 2 * std::numbers::pi / f;
      const double lo = double(s.original_max_position_embeddings) / s.low_freq_factor;
      const double hi = double(s.original_max_position_embeddings) / s.high_freq_factor;
      double scaled = wl > lo ? f / s.factor : f;
      const double smooth = (double(s.original_max_position_embeddings) / wl - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      const double smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
      const bool medium = !(wl < hi) && !(wl > lo);
      f = medium ? smoothed : scaled;
    }
    out.push_back(f);
  }
  return out;
}

TEST(CpuOps, RopeFrequenciesWithScaling) {
  RopeScaling none, linear, llama3;
  linear.type = RopeScaling::Type::kLinear;
  linear.factor = 4.0;
  llama3.type = RopeScaling::Type::kLlama3;
  llama3.factor = 8.0;
  llama3.low_freq_factor = 1.0;
  llama3.high_freq_factor = 4.0;
  llama3.original_max_position_embeddings = 8192;
  for (const auto* s : {&none, &linear, &llama3}) {
    for (double theta : {10000.0, 500000.0}) {
      auto want = ref_inv_freq(128, theta, *s);
      auto got = rope_inv_freq(128, theta, *s);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-7 * want[i]) << i;
    }
  }
  // Llama 3 scaling keeps the highest frequencies and divides the lowest by the factor.
  auto base = rope_inv_freq(128, 500000.0, none), l3 = rope_inv_freq(128, 500000.0, llama3);
  EXPECT_EQ(l3[0], base[0]);
  EXPECT_NEAR(l3.back(), base.back() / 8.0f, 1e-7 * base.back());
}

// Rotation of a pair (a, b) by angle t, in double.
void rotate(double& a, double& b, double t) {
  const double x = a, y = b;
  a = x * std::cos(t) - y * std::sin(t);
  b = x * std::sin(t) + y * std::cos(t);
}

TEST(CpuOps, RopeBothLayoutsMatchDouble) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t heads = 3, d = 64;
  const auto inv = rope_inv_freq(d, 10000.0, RopeScaling{});
  for (int64_t pos : {int64_t(0), int64_t(1), rng.uniform_int(2, 4000)}) {
    auto x = rng.normal(size_t(heads * d));
    std::vector<double> half(x.begin(), x.end()), inter(x.begin(), x.end());
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d / 2; ++i) {
        const double t = double(float(pos) * inv[size_t(i)]);
        rotate(half[size_t(h * d + i)], half[size_t(h * d + i + d / 2)], t);
        rotate(inter[size_t(h * d + 2 * i)], inter[size_t(h * d + 2 * i + 1)], t);
      }
    auto a = x, b = x;
    rope_apply(a.data(), heads, d, pos, inv.data(), RopeLayout::kHalfSplit);
    rope_apply(b.data(), heads, d, pos, inv.data(), RopeLayout::kInterleaved);
    expect_close(half, a.data(), 1e-5, 1.0);
    expect_close(inter, b.data(), 1e-5, 1.0);
  }
}

TEST(CpuOps, RopeLayoutsAgreeUnderThePermutation) {
  // HF's permutation moves interleaved pair (2i, 2i+1) to (i, i + d/2): rotating in either layout
  // and permuting must give the same vector. This is why loaders may serve half-split weights.
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const int64_t d = 16;
  const auto inv = rope_inv_freq(d, 10000.0, RopeScaling{});
  auto inter = rng.normal(size_t(d));
  std::vector<float> half(static_cast<size_t>(d));
  for (int64_t i = 0; i < d / 2; ++i) half[size_t(i)] = inter[size_t(2 * i)], half[size_t(i + d / 2)] = inter[size_t(2 * i + 1)];
  const int64_t pos = rng.uniform_int(1, 500);
  rope_apply(inter.data(), 1, d, pos, inv.data(), RopeLayout::kInterleaved);
  rope_apply(half.data(), 1, d, pos, inv.data(), RopeLayout::kHalfSplit);
  for (int64_t i = 0; i < d / 2; ++i) {
    EXPECT_EQ(half[size_t(i)], inter[size_t(2 * i)]);
    EXPECT_EQ(half[size_t(i + d / 2)], inter[size_t(2 * i + 1)]);
  }
}

TEST(CpuOps, GroupedQueryAttentionMatchesDouble) {
  Rng rng;
  SCOPED_TRACE(rng.trace());
  for (auto [heads, kv_heads] : {std::pair<int64_t, int64_t>{8, 4}, {9, 3}, {4, 4}, {6, 1}}) {
    const int64_t d = 16, n_ctx = rng.uniform_int(1, 70), stride = kv_heads * d;
    auto q = rng.normal(size_t(heads * d)), k = rng.normal(size_t(n_ctx * stride)), v = rng.normal(size_t(n_ctx * stride));
    std::vector<float> out(static_cast<size_t>(heads * d)), scratch(static_cast<size_t>(n_ctx));
    for (int64_t h = 0; h < heads; ++h)
      attention_head(q.data(), k.data(), v.data(), stride, n_ctx, h, heads, kv_heads, d, out.data(), scratch.data());
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kvh = h * kv_heads / heads;  // repeat_kv: each kv head serves heads/kv_heads query heads
      std::vector<double> s(static_cast<size_t>(n_ctx));
      double mx = -1e300, sum = 0;
      for (int64_t p = 0; p < n_ctx; ++p) {
        double acc = 0;
        for (int64_t i = 0; i < d; ++i) acc += double(q[size_t(h * d + i)]) * k[size_t(p * stride + kvh * d + i)];
        s[size_t(p)] = acc / std::sqrt(double(d));
        mx = std::max(mx, s[size_t(p)]);
      }
      for (auto& x : s) sum += (x = std::exp(x - mx));
      std::vector<double> want(static_cast<size_t>(d), 0.0);
      for (int64_t p = 0; p < n_ctx; ++p)
        for (int64_t i = 0; i < d; ++i) want[size_t(i)] += s[size_t(p)] / sum * v[size_t(p * stride + kvh * d + i)];
      expect_close(want, out.data() + h * d, 1e-5, 1.0);
    }
  }
}

}  // namespace
}  // namespace rtnq::cpu
