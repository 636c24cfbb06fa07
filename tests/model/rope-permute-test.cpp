// q/k row permutation between the interleaved (Meta, llama.cpp) and half-split (Hugging Face)
// rotary layouts: hand cases, inverse property, HF's view/transpose definition, and the property
// that makes it right: RoPE on the permuted weights gives the permuted RoPE output.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "model/loaders.h"

namespace rtnq {
namespace {

TEST(RopePermute, HandCases) {
  // 2 heads of 4 rows, 1 column: half-split row (j*2 + i) takes interleaved row (2i + j), per head.
  const std::vector<float> src = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<float> dst(8);
  permute_rows_interleaved_to_half(src.data(), dst.data(), 2, 4, 1);
  EXPECT_EQ(dst, (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
  std::vector<float> back(8);
  permute_rows_half_to_interleaved(dst.data(), back.data(), 2, 4, 1);
  EXPECT_EQ(back, src);

  // 1 head of 6 rows, 2 columns: the even rows first (0, 2, 4), then the odd ones (1, 3, 5).
  const std::vector<float> s6 = {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15};
  std::vector<float> d6(12);
  permute_rows_interleaved_to_half(s6.data(), d6.data(), 1, 6, 2);
  EXPECT_EQ(d6, (std::vector<float>{0, 10, 2, 12, 4, 14, 1, 11, 3, 13, 5, 15}));
}

struct Shape4 {
  int64_t heads, head_dim, cols;
};

Shape4 random_shape(std::mt19937& rng) {
  return {1 + int64_t(rng() % 6), 2 * (1 + int64_t(rng() % 8)), 1 + int64_t(rng() % 9)};
}

std::vector<float> random_matrix(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(RopePermute, InversesAndHfDefinition) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int iter = 0; iter < 50; ++iter) {
    const auto [heads, hd, cols] = random_shape(rng);
    const size_t n = size_t(heads * hd * cols);
    const auto w = random_matrix(rng, n);
    std::vector<float> half(n), inter(n), back(n);
    permute_rows_interleaved_to_half(w.data(), half.data(), heads, hd, cols);
    permute_rows_half_to_interleaved(half.data(), back.data(), heads, hd, cols);
    EXPECT_EQ(back, w);
    permute_rows_half_to_interleaved(w.data(), inter.data(), heads, hd, cols);
    permute_rows_interleaved_to_half(inter.data(), back.data(), heads, hd, cols);
    EXPECT_EQ(back, w);
    // HF: w.view(heads, hd/2, 2, cols).transpose(1, 2).reshape(heads*hd, cols), i.e.
    // out[h][j][i][c] = in[h][i][j][c].
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          for (int64_t c = 0; c < cols; ++c) {
            const size_t out_idx = size_t(((h * 2 + j) * (hd / 2) + i) * cols + c);
            const size_t in_idx = size_t(((h * (hd / 2) + i) * 2 + j) * cols + c);
            ASSERT_EQ(half[out_idx], w[in_idx]) << "h " << h << " i " << i << " j " << j << " c " << c;
          }
  }
}

// The reason for the permutation: with W_half = permute(W_interleaved), rotating adjacent pairs of
// W_interleaved x gives the same numbers as rotating (i, i + d/2) pairs of W_half x, permuted.
TEST(RopePermute, InterleavedRopeEqualsHalfSplitRope) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int iter = 0; iter < 20; ++iter) {
    const auto [heads, hd, cols] = random_shape(rng);
    const int64_t rows = heads * hd;
    const auto w_inter = random_matrix(rng, size_t(rows * cols));
    const auto x = random_matrix(rng, size_t(cols));
    std::vector<float> w_half(w_inter.size());
    permute_rows_interleaved_to_half(w_inter.data(), w_half.data(), heads, hd, cols);
    auto matvec = [&](const std::vector<float>& w) {
      std::vector<float> y(size_t(rows), 0.0f);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) y[size_t(r)] += w[size_t(r * cols + c)] * x[size_t(c)];
      return y;
    };
    auto q_inter = matvec(w_inter);
    auto q_half = matvec(w_half);
    const float pos = float(rng() % 100);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < hd / 2; ++i) {
        const float angle = pos * std::pow(10000.0f, -2.0f * float(i) / float(hd));
        const float c = std::cos(angle), s = std::sin(angle);
        auto rotate = [&](std::vector<float>& q, int64_t a, int64_t b) {
          const float qa = q[size_t(a)], qb = q[size_t(b)];
          q[size_t(a)] = qa * c - qb * s;
          q[size_t(b)] = qa * s + qb * c;
        };
        rotate(q_inter, h * hd + 2 * i, h * hd + 2 * i + 1);
        rotate(q_half, h * hd + i, h * hd + i + hd / 2);
      }
    }
    std::vector<float> expect(q_half.size());
    permute_rows_interleaved_to_half(q_inter.data(), expect.data(), heads, hd, 1);
    // The two paths do the same arithmetic on the same numbers, but the compiler may contract or
    // vectorise them differently (FMA), so allow a few ulps.
    constexpr float kUlpsTolerance = 1e-5f;
    for (size_t k = 0; k < expect.size(); ++k)
      ASSERT_NEAR(q_half[k], expect[k], kUlpsTolerance * (1.0f + std::fabs(expect[k]))) << "row " << k;
  }
}

}  // namespace
}  // namespace rtnq
