#include "cpu/linear.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "core/check.h"
#include "core/thread-pool.h"
#include "cpu/simd.h"
#include "quant/pack-layout.h"

namespace rtnq::cpu {
namespace {

constexpr int64_t kTileRows = 4;

// Four dot products of one activation row against four weight rows: each x load feeds four FMAs.
inline void dot4(const float* x, const float* w0, const float* w1, const float* w2, const float* w3,
                 int64_t n, float* out) {
  int64_t i = 0;
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#if RTNQ_CPU_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w0 + i), a0);
    a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w1 + i), a1);
    a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w2 + i), a2);
    a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w3 + i), a3);
  }
  s0 = hsum256(a0), s1 = hsum256(a1), s2 = hsum256(a2), s3 = hsum256(a3);
#endif
  for (; i < n; ++i) {
    s0 += x[i] * w0[i];
    s1 += x[i] * w1[i];
    s2 += x[i] * w2[i];
    s3 += x[i] * w3[i];
  }
  out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

// Four weight rows against three tokens: 12 accumulators, 7 loads per 12 FMAs, so the batched
// path (prefill, perplexity) is bound by FMA throughput rather than loads. Per (row, token) the
// arithmetic is exactly dot4's, so batch size never changes a result.
inline void dot4x3(const float* x0, const float* x1, const float* x2, const float* const* w, int64_t n,
                   float* out /* [3][4] */) {
  int64_t i = 0;
  float s[3][4] = {};
#if RTNQ_CPU_AVX2
  __m256 a[3][4];
  for (auto& r : a)
    for (auto& v : r) v = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 xv[3] = {_mm256_loadu_ps(x0 + i), _mm256_loadu_ps(x1 + i), _mm256_loadu_ps(x2 + i)};
    for (int r = 0; r < 4; ++r) {
      const __m256 wv = _mm256_loadu_ps(w[r] + i);
      a[0][r] = _mm256_fmadd_ps(xv[0], wv, a[0][r]);
      a[1][r] = _mm256_fmadd_ps(xv[1], wv, a[1][r]);
      a[2][r] = _mm256_fmadd_ps(xv[2], wv, a[2][r]);
    }
  }
  for (int t = 0; t < 3; ++t)
    for (int r = 0; r < 4; ++r) s[t][r] = hsum256(a[t][r]);
#endif
  const float* xs[3] = {x0, x1, x2};
  for (; i < n; ++i)
    for (int t = 0; t < 3; ++t)
      for (int r = 0; r < 4; ++r) s[t][r] += xs[t][i] * w[r][i];
  for (int t = 0; t < 3; ++t)
    for (int r = 0; r < 4; ++r) out[t * 4 + r] = s[t][r];
}

// One packed row -> fp32. Element j sits in word j / (32/bits) at bit (j % (32/bits)) * bits,
// stored unsigned with offset 2^(bits-1) (src/quant/pack-layout.h).
void dequantize_packed_row(const int32_t* words, const float* scales, int64_t cols, int bits, int64_t group,
                           float* out) {
  const int pf = pack_factor(bits);
  const int32_t offset = pack_offset(bits);
  const uint32_t mask = pack_field_mask(bits);
  const int64_t n_groups = cols / group;
  for (int64_t g = 0; g < n_groups; ++g) {
    const float s = scales[g];
    int64_t j = g * group;
    const int64_t end = j + group;
#if RTNQ_CPU_AVX2
    if (j % pf == 0) {
      const __m256 vs = _mm256_set1_ps(s);
      if (bits == 4) {
        const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
        const __m256i m = _mm256_set1_epi32(0xF), off = _mm256_set1_epi32(8);
        for (; j + 8 <= end; j += 8) {
          const __m256i w = _mm256_set1_epi32(words[j / 8]);
          const __m256i q = _mm256_sub_epi32(_mm256_and_si256(_mm256_srlv_epi32(w, shifts), m), off);
          _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), vs));
        }
      } else {
        const __m256i off = _mm256_set1_epi32(128);
        for (; j + 8 <= end; j += 8) {
          // Two words are eight consecutive bytes in element order (little-endian).
          const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(words + j / 4));
          const __m256i q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(b), off);
          _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), vs));
        }
      }
    }
#endif
    for (; j < end; ++j) {
      const uint32_t w = uint32_t(words[j / pf]);
      const int32_t q = int32_t((w >> ((j % pf) * bits)) & mask) - offset;
      out[j] = float(q) * s;
    }
  }
}

// Decode path (one token): dot products straight from the stored encoding, no fp32 copy of the
// weights. Each group's integer-times-x sum is scaled once; fp32 accumulation throughout.
float dot_packed_row(const int32_t* words, const float* scales, const float* x, int64_t cols, int bits,
                     int64_t group, const float* x_nibble_order) {
  const int pf = pack_factor(bits);
  const int32_t offset = pack_offset(bits);
  const uint32_t mask = pack_field_mask(bits);
  const int64_t n_groups = cols / group;
  float total = 0.0f;
#if RTNQ_CPU_AVX2
  if (bits == 4 && x_nibble_order != nullptr && group % 32 == 0) {
    // 16 bytes hold 32 elements: low nibbles are the even elements, high nibbles the odd ones;
    // x_nibble_order has x permuted to match, so no per-word shifts are needed.
    const __m128i m = _mm_set1_epi8(0x0F), off = _mm_set1_epi8(8);
    __m256 acc = _mm256_setzero_ps();
    const auto* bytes = reinterpret_cast<const uint8_t*>(words);
    for (int64_t g = 0; g < n_groups; ++g) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (int64_t j = g * group; j < (g + 1) * group; j += 32) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + j / 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, m), off);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m), off);
        const float* xp = x_nibble_order + j;
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), _mm256_loadu_ps(xp), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), _mm256_loadu_ps(xp + 8), a1);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), _mm256_loadu_ps(xp + 16), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), _mm256_loadu_ps(xp + 24), a1);
      }
      acc = _mm256_fmadd_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(scales[g]), acc);
    }
    return hsum256(acc);
  }
  if (group % 16 == 0) {
    __m256 acc = _mm256_setzero_ps();
    if (bits == 4) {
      const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
      const __m256i m = _mm256_set1_epi32(0xF), off = _mm256_set1_epi32(8);
      for (int64_t g = 0; g < n_groups; ++g) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        const int32_t* w = words + g * group / 8;
        const float* xg = x + g * group;
        for (int64_t j = 0; j < group; j += 16) {
          const __m256i w0 = _mm256_set1_epi32(w[j / 8]), w1 = _mm256_set1_epi32(w[j / 8 + 1]);
          const __m256i q0 = _mm256_sub_epi32(_mm256_and_si256(_mm256_srlv_epi32(w0, shifts), m), off);
          const __m256i q1 = _mm256_sub_epi32(_mm256_and_si256(_mm256_srlv_epi32(w1, shifts), m), off);
          a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q0), _mm256_loadu_ps(xg + j), a0);
          a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q1), _mm256_loadu_ps(xg + j + 8), a1);
        }
        acc = _mm256_fmadd_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(scales[g]), acc);
      }
    } else {
      const __m256i off = _mm256_set1_epi32(128);
      for (int64_t g = 0; g < n_groups; ++g) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        const auto* b = reinterpret_cast<const uint8_t*>(words) + g * group;
        const float* xg = x + g * group;
        for (int64_t j = 0; j < group; j += 16) {
          const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + j));
          const __m256i q0 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), off);
          const __m256i q1 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8)), off);
          a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q0), _mm256_loadu_ps(xg + j), a0);
          a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q1), _mm256_loadu_ps(xg + j + 8), a1);
        }
        acc = _mm256_fmadd_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(scales[g]), acc);
      }
    }
    return hsum256(acc);
  }
#endif
  for (int64_t g = 0; g < n_groups; ++g) {
    float a = 0.0f;
    for (int64_t j = g * group; j < (g + 1) * group; ++j) {
      const uint32_t w = uint32_t(words[j / pf]);
      a += float(int32_t((w >> ((j % pf) * bits)) & mask) - offset) * x[j];
    }
    total += a * scales[g];
  }
  return total;
}

// x in the order of INT4 nibbles within each 16-byte run: per 32 elements, the even ones of the
// first 16, their odd ones, then the same for the second 16.
void to_nibble_order(const float* x, int64_t cols, float* out) {
  for (int64_t b = 0; b + 32 <= cols; b += 32)
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 8; ++k) {
        out[b + h * 16 + k] = x[b + h * 16 + 2 * k];
        out[b + h * 16 + 8 + k] = x[b + h * 16 + 2 * k + 1];
      }
}

// One token against a BF16/F16 row, converting 8 values at a time in registers.
float dot_half_row(const uint16_t* w, const float* x, int64_t cols, bool bf16) {
  int64_t i = 0;
  float tail = 0.0f;
#if RTNQ_CPU_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  auto load = [bf16](const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
  };
  for (; i + 16 <= cols; i += 16) {
    a0 = _mm256_fmadd_ps(load(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
  }
  tail = hsum256(_mm256_add_ps(a0, a1));
#endif
  for (; i < cols; ++i) tail += (bf16 ? bf16_to_f32(w[i]) : f16_to_f32(w[i])) * x[i];
  return tail;
}

}  // namespace

Expected<Linear> Linear::dense(const TensorView& w) {
  if (w.info.shape.size() != 2)
    return invalid_argument(fmt::format("tensor '{}': expected a 2-D weight, got shape {}", w.info.name,
                                        shape_to_string(w.info.shape)));
  Linear l;
  switch (w.info.dtype) {
    case DType::kF32: l.kind_ = Kind::kF32; break;
    case DType::kF16: l.kind_ = Kind::kF16; break;
    case DType::kBF16: l.kind_ = Kind::kBF16; break;
    default:
      return unsupported(fmt::format("tensor '{}': weight dtype {} (expected F32, F16 or BF16)", w.info.name,
                                     dtype_name(w.info.dtype)));
  }
  l.rows_ = w.info.shape[0];
  l.cols_ = w.info.shape[1];
  l.group_ = l.cols_;
  l.data_ = w.data;
  l.keep_data_ = w.keepalive;
  l.name_ = w.info.name;
  return l;
}

Expected<Linear> Linear::packed(const TensorView& packed, const TensorView& scales, int64_t out, int64_t in) {
  const auto& ps = packed.info.shape;
  const auto& ss = scales.info.shape;
  const std::string& name = packed.info.name;
  if (packed.info.dtype != DType::kI32 || ps.size() != 2 || ps[0] != out || ps[1] <= 0)
    return corrupt(fmt::format("tensor '{}': expected int32 [{}, in*bits/32], got {} {}", name, out,
                               dtype_name(packed.info.dtype), shape_to_string(ps)));
  int bits = 0;
  if (in > 0 && ps[1] == packed_row_words(in, 4)) bits = 4;
  else if (in > 0 && ps[1] == packed_row_words(in, 8)) bits = 8;
  else
    return unsupported(fmt::format("tensor '{}': {} words per row for {} inputs is neither INT4 nor INT8", name,
                                   ps[1], in));
  if (!is_float(scales.info.dtype) || scales.info.dtype == DType::kF64 || ss.size() != 2 || ss[0] != out ||
      ss[1] <= 0 || in % ss[1] != 0)
    return corrupt(fmt::format("tensor '{}': expected scales F32/F16/BF16 [{}, {}/group], got {} {}",
                               scales.info.name, out, in, dtype_name(scales.info.dtype), shape_to_string(ss)));
  Linear l;
  l.kind_ = bits == 4 ? Kind::kInt4 : Kind::kInt8;
  l.rows_ = out;
  l.cols_ = in;
  l.group_ = in / ss[1];
  l.data_ = packed.data;
  l.scales_ = scales.data;
  l.scale_dtype_ = scales.info.dtype;
  l.keep_data_ = packed.keepalive;
  l.keep_scales_ = scales.keepalive;
  l.name_ = name;
  return l;
}

int Linear::bits() const {
  switch (kind_) {
    case Kind::kF32: return 32;
    case Kind::kF16:
    case Kind::kBF16: return 16;
    case Kind::kInt4: return 4;
    case Kind::kInt8: return 8;
  }
  return 0;
}

uint64_t Linear::weight_bytes() const {
  uint64_t w = uint64_t(rows_) * uint64_t(cols_) * uint64_t(bits()) / 8;
  if (kind_ == Kind::kInt4 || kind_ == Kind::kInt8)
    w = uint64_t(rows_) * (uint64_t(packed_row_words(cols_, bits())) * 4 +
                           uint64_t(cols_ / group_) * dtype_size(scale_dtype_));
  return w;
}

void Linear::dequantize(int64_t r0, int64_t r1, float* out) const {
  RTNQ_CHECK(0 <= r0 && r0 <= r1 && r1 <= rows_, "rows [{}, {}) of {}", r0, r1, rows_);
  const int64_t n_groups = cols_ / group_;
  switch (kind_) {
    case Kind::kF32:
    case Kind::kF16:
    case Kind::kBF16: {
      const DType dt = kind_ == Kind::kF32 ? DType::kF32 : kind_ == Kind::kF16 ? DType::kF16 : DType::kBF16;
      const auto* src = static_cast<const uint8_t*>(data_) + size_t(r0 * cols_) * dtype_size(dt);
      convert_to_f32(src, dt, out, size_t((r1 - r0) * cols_));
      return;
    }
    case Kind::kInt4:
    case Kind::kInt8: {
      const int b = bits();
      const int64_t words_per_row = packed_row_words(cols_, b);
      float sbuf[4096];
      std::vector<float> big;
      float* s = sbuf;
      if (n_groups > 4096) {
        big.resize(size_t(n_groups));
        s = big.data();
      }
      const auto* scale_bytes = static_cast<const uint8_t*>(scales_);
      for (int64_t r = r0; r < r1; ++r) {
        convert_to_f32(scale_bytes + size_t(r * n_groups) * dtype_size(scale_dtype_), scale_dtype_, s,
                       size_t(n_groups));
        dequantize_packed_row(static_cast<const int32_t*>(data_) + r * words_per_row, s, cols_, b, group_,
                              out + (r - r0) * cols_);
      }
      return;
    }
  }
}

void Linear::forward_rows(const float* x, int64_t n, float* y, int64_t ldy, int64_t r0, int64_t r1) const {
  if (n == 1 && kind_ != Kind::kF32) {
    forward_rows_one(x, y, r0, r1);
    return;
  }
  thread_local std::vector<float> tile;
  if (kind_ != Kind::kF32 && tile.size() < size_t(kTileRows * cols_)) tile.resize(size_t(kTileRows * cols_));
  for (int64_t r = r0; r < r1; r += kTileRows) {
    const int64_t nr = std::min(kTileRows, r1 - r);
    const float* w;
    if (kind_ == Kind::kF32) {
      w = static_cast<const float*>(data_) + r * cols_;
    } else {
      dequantize(r, r + nr, tile.data());
      w = tile.data();
    }
    // Short tiles point the missing rows at row 0 and drop their results.
    const float* w1 = w + (nr > 1 ? 1 : 0) * cols_;
    const float* w2 = w + (nr > 2 ? 2 : 0) * cols_;
    const float* w3 = w + (nr > 3 ? 3 : 0) * cols_;
    const float* wr[4] = {w, w1, w2, w3};
    int64_t t = 0;
    float out3[12];
    for (; t + 3 <= n; t += 3) {
      dot4x3(x + t * cols_, x + (t + 1) * cols_, x + (t + 2) * cols_, wr, cols_, out3);
      for (int64_t k = 0; k < 3; ++k)
        for (int64_t i = 0; i < nr; ++i) y[(t + k) * ldy + r + i] = out3[k * 4 + i];
    }
    float out[4];
    for (; t < n; ++t) {
      dot4(x + t * cols_, w, w1, w2, w3, cols_, out);
      for (int64_t i = 0; i < nr; ++i) y[t * ldy + r + i] = out[i];
    }
  }
}

void Linear::forward_rows_one(const float* x, float* y, int64_t r0, int64_t r1) const {
  if (kind_ == Kind::kBF16 || kind_ == Kind::kF16) {
    const auto* w = static_cast<const uint16_t*>(data_);
    for (int64_t r = r0; r < r1; ++r) y[r] = dot_half_row(w + r * cols_, x, cols_, kind_ == Kind::kBF16);
    return;
  }
  const int b = bits();
  const int64_t n_groups = cols_ / group_, words_per_row = packed_row_words(cols_, b);
  float sbuf[4096];
  std::vector<float> big;
  float* s = sbuf;
  if (n_groups > 4096) {
    big.resize(size_t(n_groups));
    s = big.data();
  }
  const float* xp = nullptr;
  thread_local std::vector<float> xperm;
  if (b == 4 && group_ % 32 == 0) {
    xperm.resize(size_t(cols_));
    to_nibble_order(x, cols_, xperm.data());
    xp = xperm.data();
  }
  const auto* scale_bytes = static_cast<const uint8_t*>(scales_);
  for (int64_t r = r0; r < r1; ++r) {
    convert_to_f32(scale_bytes + size_t(r * n_groups) * dtype_size(scale_dtype_), scale_dtype_, s, size_t(n_groups));
    y[r] = dot_packed_row(static_cast<const int32_t*>(data_) + r * words_per_row, s, x, cols_, b, group_, xp);
  }
}

void Linear::forward(const float* x, int64_t n, float* y, ThreadPool* pool) const {
  LinearJob job{this, x, y};
  run_linears(std::span<const LinearJob>(&job, 1), n, pool);
}

void run_linears(std::span<const LinearJob> jobs, int64_t n, ThreadPool* pool) {
  // Tiles of all jobs in one index space; a chunk of tiles may straddle two jobs.
  std::vector<int64_t> first_tile(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j)
    first_tile[j + 1] = first_tile[j] + (jobs[j].linear->rows() + kTileRows - 1) / kTileRows;
  const int64_t total = first_tile.back();
  auto body = [&](int64_t t0, int64_t t1) {
    for (size_t j = 0; j < jobs.size() && t0 < t1; ++j) {
      const int64_t a = std::max(t0, first_tile[j]), b = std::min(t1, first_tile[j + 1]);
      if (a >= b) continue;
      const Linear& l = *jobs[j].linear;
      const int64_t r0 = (a - first_tile[j]) * kTileRows;
      const int64_t r1 = std::min(l.rows(), (b - first_tile[j]) * kTileRows);
      l.forward_rows(jobs[j].x, n, jobs[j].y, l.rows(), r0, r1);
    }
  };
  if (pool == nullptr) {
    body(0, total);
  } else {
    pool->parallel_for(total, 4, body);
  }
}

}  // namespace rtnq::cpu
