// Sampling: greedy is argmax (first on ties), seeded streams repeat, temperature sampling follows
// softmax(logits / T), and top-p only ever returns tokens inside the nucleus.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/sampler.h"

namespace rtnq {
namespace {

TEST(Sampler, GreedyIsFirstArgmax) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(1000);
  for (auto& v : x) v = nd(gen);
  // Two equal maxima at a < b: greedy must return a.
  const size_t a = gen() % 999, b = a + 1 + gen() % (999 - a);
  x[a] = 100.0f;
  x[b] = 100.0f;
  Sampler s({0.0f, 1.0f, 1});
  EXPECT_EQ(s.sample(x.data(), int64_t(x.size())), int32_t(a));
}

TEST(Sampler, SeededStreamsRepeatAndFollowSoftmax) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f};
  const float temp = 0.7f;
  Sampler a({temp, 1.0f, seed}), b({temp, 1.0f, seed});
  std::vector<int> counts(logits.size(), 0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    auto la = logits, lb = logits;
    const int32_t ta = a.sample(la.data(), 5), tb = b.sample(lb.data(), 5);
    ASSERT_EQ(ta, tb);
    ++counts[size_t(ta)];
  }
  double z = 0;
  for (float l : logits) z += std::exp(double(l) / temp);
  for (size_t i = 0; i < logits.size(); ++i) {
    const double p = std::exp(double(logits[i]) / temp) / z;
    const double sd = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(double(counts[i]) / n, p, 5 * sd + 1e-4) << "token " << i;  // 5 sigma
  }
}

TEST(Sampler, TopPStaysInsideTheNucleus) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  // Probabilities about 0.6, 0.3, 0.07, 0.03: top-p 0.8 keeps tokens 0 and 1 only.
  const std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.07f), std::log(0.03f)};
  Sampler s({1.0f, 0.8f, seed});
  int zero = 0;
  for (int i = 0; i < 5000; ++i) {
    auto l = logits;
    const int32_t t = s.sample(l.data(), 4);
    ASSERT_TRUE(t == 0 || t == 1) << t;
    zero += t == 0;
  }
  EXPECT_NEAR(zero / 5000.0, 0.6 / 0.9, 0.05);
}

TEST(Sampler, UniformIsInUnitInterval) {
  Sampler s({1.0f, 1.0f, std::random_device{}()});
  double mean = 0;
  for (int i = 0; i < 10000; ++i) {
    const float u = s.next_uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    mean += u;
  }
  EXPECT_NEAR(mean / 10000, 0.5, 0.02);
}

}  // namespace
}  // namespace rtnq
