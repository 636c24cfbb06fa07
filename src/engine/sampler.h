// Next-token choice from logits: greedy (temperature 0), or temperature sampling with optional
// nucleus (top-p) truncation, from a seeded generator so runs repeat exactly.
#pragma once

#include <cstdint>
#include <vector>

namespace rtnq {

struct SamplerParams {
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;        // 1: no truncation
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerParams p);
  // logits is modified (scaled and turned into probabilities) when sampling.
  int32_t sample(float* logits, int64_t n);
  // A uniform float in [0, 1) from the xorshift* stream (exposed for tests).
  float next_uniform();

 private:
  SamplerParams p_;
  uint64_t state_;
  std::vector<std::pair<float, int32_t>> order_;
};

// Index of the largest value; the first one on ties (as llama2.c's argmax).
int32_t argmax(const float* x, int64_t n);

}  // namespace rtnq
