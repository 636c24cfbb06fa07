// The small CPU ops of a Llama-family forward pass. Each is plain fp32 code, the reference that the
// CUDA backend is tested against; tests/cpu checks each against a double-precision version.
#pragma once

#include <cstdint>
#include <vector>

#include "rtnq/dtype.h"
#include "rtnq/model.h"

namespace rtnq::cpu {

// out[0..dim) = row `token` of an embedding table [vocab, dim] stored as F32/F16/BF16.
void embedding_lookup(const void* table, DType dtype, int64_t dim, int64_t token, float* out);

// out = x / sqrt(mean(x^2) + eps) * weight (Llama RMSNorm: the mean is taken in fp32 as HF does).
void rmsnorm(const float* x, const float* weight, float* out, int64_t n, float eps);

// In-place numerically stable softmax over n values.
void softmax(float* x, int64_t n);

// out[i] = silu(gate[i]) * up[i]; out may alias gate.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// x[i] += bias[i].
void add_bias(float* x, const float* bias, int64_t n);
// x[i] += y[i] (residual connection).
void add_inplace(float* x, const float* y, int64_t n);

// Rotary frequencies theta^(-2i/head_dim) for i < head_dim/2, with the model's frequency scaling
// applied (linear: divided by factor; llama3: the wavelength-dependent blend of Llama 3.1).
std::vector<float> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling);

// Rotates n_heads consecutive head vectors of head_dim values at position `pos`, in place.
//   kHalfSplit:   pairs (x[i], x[i + head_dim/2]) rotate by angle pos * inv_freq[i]  (Hugging Face)
//   kInterleaved: pairs (x[2i], x[2i + 1])        rotate by angle pos * inv_freq[i]  (Meta, llama2.c)
void rope_apply(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, const float* inv_freq,
                RopeLayout layout);

// Causal grouped-query attention of one query position over n_ctx cached positions.
//   q:   [n_heads, head_dim]
//   k,v: the cache rows of one layer, position p at k + p * kv_stride, [n_kv_heads, head_dim] each
//   out: [n_heads, head_dim]
//   scores: scratch of n_ctx floats per call (callers running heads in parallel pass one per thread).
// Query head h reads kv head h / (n_heads / n_kv_heads), as HF's repeat_kv does.
void attention_head(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t n_ctx,
                    int64_t head, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float* out,
                    float* scores);

}  // namespace rtnq::cpu
