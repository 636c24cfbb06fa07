#include "cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/check.h"
#include "cpu/simd.h"

namespace rtnq::cpu {

void embedding_lookup(const void* table, DType dtype, int64_t dim, int64_t token, float* out) {
  RTNQ_CHECK(is_float(dtype) && dtype != DType::kF64, "embedding table must be F32/F16/BF16");
  const auto* row = static_cast<const uint8_t*>(table) + size_t(token) * size_t(dim) * dtype_size(dtype);
  convert_to_f32(row, dtype, out, size_t(dim));
}

void rmsnorm(const float* x, const float* weight, float* out, int64_t n, float eps) {
  const float ss = dot_f32(x, x, n) / float(n);
  const float inv = 1.0f / std::sqrt(ss + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float mx = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_bias(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += bias[i];
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

std::vector<float> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling) {
  RTNQ_CHECK(head_dim > 0 && head_dim % 2 == 0, "head_dim {} must be even", head_dim);
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // HF computes the exponent 2i/d in fp32 and the power in fp32; double then one rounding is at
    // least as accurate and differs by at most an ulp.
    double f = 1.0 / std::pow(theta, double(2 * i) / double(head_dim));
    switch (scaling.type) {
      case RopeScaling::Type::kNone:
        break;
      case RopeScaling::Type::kLinear:
        f /= scaling.factor;  // same as dividing the position by the factor
        break;
      case RopeScaling::Type::kLlama3: {
        // Llama 3.1: long wavelengths slow down by `factor`, short ones stay, the band between
        // blends linearly in (context / wavelength).
        const double old_ctx = double(scaling.original_max_position_embeddings);
        const double low_wavelen = old_ctx / scaling.low_freq_factor;
        const double high_wavelen = old_ctx / scaling.high_freq_factor;
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_wavelen) {
          f /= scaling.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (old_ctx / wavelen - scaling.low_freq_factor) /
                                (scaling.high_freq_factor - scaling.low_freq_factor);
          f = (1.0 - smooth) * f / scaling.factor + smooth * f;
        }
        break;
      }
    }
    inv[size_t(i)] = float(f);
  }
  return inv;
}

void rope_apply(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, const float* inv_freq,
                RopeLayout layout) {
  const int64_t half = head_dim / 2;
  // The angle is formed in fp32 as HF and llama2.c do (pos * inv_freq), then cos/sin of it.
  float cos_buf[512], sin_buf[512];
  RTNQ_CHECK(half <= 512, "head_dim {} too large", head_dim);
  for (int64_t i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq[i];
    cos_buf[i] = std::cos(angle);
    sin_buf[i] = std::sin(angle);
  }
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = layout == RopeLayout::kHalfSplit ? i : 2 * i;
      const int64_t b = layout == RopeLayout::kHalfSplit ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * cos_buf[i] - x1 * sin_buf[i];
      v[b] = x0 * sin_buf[i] + x1 * cos_buf[i];
    }
  }
}

void attention_head(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t n_ctx,
                    int64_t head, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float* out,
                    float* scores) {
  const int64_t kvh = head / (n_heads / n_kv_heads);
  const float* qh = q + head * head_dim;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  for (int64_t p = 0; p < n_ctx; ++p) scores[p] = dot_f32(qh, k + p * kv_stride + kvh * head_dim, head_dim) * scale;
  softmax(scores, n_ctx);
  float* oh = out + head * head_dim;
  std::fill(oh, oh + head_dim, 0.0f);
  for (int64_t p = 0; p < n_ctx; ++p) axpy_f32(scores[p], v + p * kv_stride + kvh * head_dim, oh, head_dim);
}

}  // namespace rtnq::cpu
