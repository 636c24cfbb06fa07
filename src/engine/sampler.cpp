#include "engine/sampler.h"

#include <algorithm>

#include "cpu/ops.h"

namespace rtnq {

int32_t argmax(const float* x, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = int32_t(i);
  return best;
}

Sampler::Sampler(SamplerParams p) : p_(p), state_(p.seed ^ 0x9E3779B97F4A7C15ull) {
  if (state_ == 0) state_ = 1;  // xorshift must not start at zero
}

float Sampler::next_uniform() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  // 24 high bits of the xorshift* product: exact in a float, strictly below 1.
  return float((state_ * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

int32_t Sampler::sample(float* logits, int64_t n) {
  if (p_.temperature <= 0.0f) return argmax(logits, n);
  for (int64_t i = 0; i < n; ++i) logits[i] /= p_.temperature;
  cpu::softmax(logits, n);
  const float r = next_uniform();
  if (p_.top_p <= 0.0f || p_.top_p >= 1.0f) {
    float cdf = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      cdf += logits[i];
      if (r < cdf) return int32_t(i);
    }
    return int32_t(n - 1);  // rounding left the cdf just short of 1
  }
  // Nucleus: the smallest set of most probable tokens whose mass reaches top_p, renormalised.
  order_.clear();
  for (int64_t i = 0; i < n; ++i) order_.emplace_back(logits[i], int32_t(i));
  std::sort(order_.begin(), order_.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  float mass = 0.0f;
  size_t keep = order_.size();
  for (size_t i = 0; i < order_.size(); ++i) {
    mass += order_[i].first;
    if (mass >= p_.top_p) {
      keep = i + 1;
      break;
    }
  }
  const float target = r * mass;
  float cdf = 0.0f;
  for (size_t i = 0; i < keep; ++i) {
    cdf += order_[i].first;
    if (target < cdf) return order_[i].second;
  }
  return order_[keep - 1].second;
}

}  // namespace rtnq
