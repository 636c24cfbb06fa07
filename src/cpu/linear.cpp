#include "cpu/linear.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include <fmt/format.h>

#include "core/check.h"
#include "core/thread-pool.h"
#include "cpu/isa.h"
#include "cpu/kernels-avx512.h"
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
// The multi-row kernels below cover the usual groups; this one covers the rest one row at a time.
float dot_packed_row(const int32_t* words, const float* scales, const float* x, int64_t cols, int bits,
                     int64_t group) {
  const int pf = pack_factor(bits);
  const int32_t offset = pack_offset(bits);
  const uint32_t mask = pack_field_mask(bits);
  const int64_t n_groups = cols / group;
  float total = 0.0f;
#if RTNQ_CPU_AVX2
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
// first 16, their odd ones, then the same for the second 16. Done once per call, so vectorised.
void to_nibble_order(const float* x, int64_t cols, float* out) {
  int64_t b = 0;
#if RTNQ_CPU_AVX2
  for (; b + 16 <= cols; b += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + b), v1 = _mm256_loadu_ps(x + b + 8);
    // shuffle_ps picks per 128-bit lane: [0 2 8 10 | 4 6 12 14]; the 64-bit permute restores order.
    const __m256 ev = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 od = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1));
    _mm256_storeu_ps(out + b, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0))));
    _mm256_storeu_ps(out + b + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0))));
  }
#endif
  for (; b + 16 <= cols; b += 16)
    for (int k = 0; k < 8; ++k) {
      out[b + k] = x[b + 2 * k];
      out[b + 8 + k] = x[b + 2 * k + 1];
    }
}

// One token against a BF16/F16 row, converting 8 values at a time in registers (non-AVX2 hosts;
// dot_half_rows below is the same arithmetic over several rows).
[[maybe_unused]] float dot_half_row(const uint16_t* w, const float* x, int64_t cols, bool bf16) {
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

// ---- One-token kernels over R (1..4) rows at a time ----
// Each activation vector loaded once feeds R rows, and the 2R accumulators are independent FMA
// chains: one row alone is bound by the FMA latency (two chains), not by loads or conversion. Per
// row the operations and their order are exactly the single-row kernels', so results do not depend
// on how rows are grouped or split between threads.

#if RTNQ_CPU_AVX2
// INT4, group % 32 == 0, x already in nibble order (to_nibble_order). s: R rows of n_groups scales.
template <int R>
void dot_int4_rows(const uint8_t* const* rows, const float* s, int64_t n_groups, int64_t group, const float* xp,
                   float* out) {
  const __m128i m = _mm_set1_epi8(0x0F), off = _mm_set1_epi8(8);
  __m256 tot[R];
  for (int r = 0; r < R; ++r) tot[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < n_groups; ++g) {
    __m256 a0[R], a1[R];
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
    for (int64_t j = g * group; j < (g + 1) * group; j += 32) {
      const float* xj = xp + j;
      for (int r = 0; r < R; ++r) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + j / 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, m), off);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m), off);
        a0[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), _mm256_loadu_ps(xj), a0[r]);
        a1[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), _mm256_loadu_ps(xj + 8), a1[r]);
        a0[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                                _mm256_loadu_ps(xj + 16), a0[r]);
        a1[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))),
                                _mm256_loadu_ps(xj + 24), a1[r]);
      }
    }
    for (int r = 0; r < R; ++r)
      tot[r] = _mm256_fmadd_ps(_mm256_add_ps(a0[r], a1[r]), _mm256_set1_ps(s[r * n_groups + g]), tot[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = hsum256(tot[r]);
}

// INT8, group % 16 == 0; the stored byte is q + 128.
template <int R>
void dot_int8_rows(const uint8_t* const* rows, const float* s, int64_t n_groups, int64_t group, const float* x,
                   float* out) {
  const __m256i off = _mm256_set1_epi32(128);
  __m256 tot[R];
  for (int r = 0; r < R; ++r) tot[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < n_groups; ++g) {
    __m256 a0[R], a1[R];
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
    for (int64_t j = g * group; j < (g + 1) * group; j += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
      for (int r = 0; r < R; ++r) {
        const __m256i q0 =
            _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[r] + j))), off);
        const __m256i q1 = _mm256_sub_epi32(
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[r] + j + 8))), off);
        a0[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q0), x0, a0[r]);
        a1[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q1), x1, a1[r]);
      }
    }
    for (int r = 0; r < R; ++r)
      tot[r] = _mm256_fmadd_ps(_mm256_add_ps(a0[r], a1[r]), _mm256_set1_ps(s[r * n_groups + g]), tot[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = hsum256(tot[r]);
}

// BF16/F16 rows (the tied lm_head), same arithmetic as dot_half_row.
template <int R, bool kBf16>
void dot_half_rows(const uint16_t* const* rows, const float* x, int64_t cols, float* out) {
  auto load = [](const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (kBf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  };
  __m256 a0[R], a1[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    for (int r = 0; r < R; ++r) {
      a0[r] = _mm256_fmadd_ps(load(rows[r] + i), x0, a0[r]);
      a1[r] = _mm256_fmadd_ps(load(rows[r] + i + 8), x1, a1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float t = hsum256(_mm256_add_ps(a0[r], a1[r]));
    for (int64_t k = i; k < cols; ++k) t += (kBf16 ? bf16_to_f32(rows[r][k]) : f16_to_f32(rows[r][k])) * x[k];
    out[r] = t;
  }
}
#endif

// Inside run_phases: a per-thread number of the current phase (0 outside). A phase's inputs are
// complete and unchanging while it runs, so an input permuted once per (phase, pointer) can be
// reused by every work item of that phase on this thread.
thread_local uint64_t t_phase_serial = 0;

// How a one-token kernel wants x laid out (see to_nibble_order and avx512::permute_even_odd).
enum class InputOrder : uint8_t { kNibble16, kEvenOdd32 };

// x permuted for a kernel in a per-thread buffer (one per order), permuted again only when needed.
const float* ordered_input(const float* x, int64_t cols, InputOrder order) {
  struct Cached {
    std::vector<float> buf;
    float* data = nullptr;  // 64-byte aligned inside buf: a 512-bit load that splits a cache line costs two
    const float* x = nullptr;
    int64_t cols = 0;
    uint64_t serial = 0;
  };
  thread_local Cached cache[2];
  Cached& c = cache[size_t(order)];
  if (t_phase_serial != 0 && c.serial == t_phase_serial && c.x == x && c.cols == cols) return c.data;
  if (c.buf.size() < size_t(cols + 16)) c.buf.resize(size_t(cols + 16));
  c.data = c.buf.data() + (16 - (reinterpret_cast<uintptr_t>(c.buf.data()) / sizeof(float)) % 16) % 16;
  if (order == InputOrder::kNibble16) to_nibble_order(x, cols, c.data);
  else avx512::permute_even_odd(x, cols, c.data);
  c.x = x, c.cols = cols, c.serial = t_phase_serial;
  return c.data;
}

// Calls fn.template operator()<R>() with R = nr in 1..4 (a runtime count to a template argument).
template <typename F>
void with_rows(int64_t nr, F&& fn) {
  switch (nr) {
    case 4: fn.template operator()<4>(); break;
    case 3: fn.template operator()<3>(); break;
    case 2: fn.template operator()<2>(); break;
    default: fn.template operator()<1>(); break;
  }
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
  // Rows per kernel call. 4 rows share every activation load and run 8 FMA chains, and are ~20%
  // faster (INT8) when the weights are in cache; streamed from DRAM, as in decode, 4 interleaved
  // row streams defeat the hardware prefetcher and were slower (INT8 ~11 vs ~19 G weights/s per
  // thread, BF16 lm_head 10 vs 17), software prefetch did not recover it reliably. See
  // docs/perf-notes.md "## CPU decode".
  constexpr int64_t kRows = 1;
  if (active_isa() == Isa::kAvx512 && forward_rows_one_avx512(x, y, r0, r1)) return;
  if (kind_ == Kind::kBF16 || kind_ == Kind::kF16) {
    const auto* w = static_cast<const uint16_t*>(data_);
    const bool bf16 = kind_ == Kind::kBF16;
#if RTNQ_CPU_AVX2
    for (int64_t r = r0; r < r1; r += kRows) {
      const int64_t nr = std::min(kRows, r1 - r);
      const uint16_t* rows[4];
      for (int64_t i = 0; i < nr; ++i) rows[i] = w + (r + i) * cols_;
      with_rows(nr, [&]<int R>() {
        if (bf16) dot_half_rows<R, true>(rows, x, cols_, y + r);
        else dot_half_rows<R, false>(rows, x, cols_, y + r);
      });
    }
#else
    for (int64_t r = r0; r < r1; ++r) y[r] = dot_half_row(w + r * cols_, x, cols_, bf16);
#endif
    return;
  }
  const int b = bits();
  const int64_t n_groups = cols_ / group_, words_per_row = packed_row_words(cols_, b);
  // Scales of up to kRows rows, which are contiguous in the scale tensor: one conversion per block.
  float sbuf[4096];
  std::vector<float> big;
  float* s = sbuf;
  if (n_groups * kRows > 4096) {
    big.resize(size_t(n_groups * kRows));
    s = big.data();
  }
  const auto* scale_bytes = static_cast<const uint8_t*>(scales_);
  const auto* packed = static_cast<const int32_t*>(data_);
#if RTNQ_CPU_AVX2
  const bool int4_fast = b == 4 && group_ % 32 == 0;
  const bool int8_fast = b == 8 && group_ % 16 == 0;
  if (int4_fast || int8_fast) {
    const float* xp = x;
    if (int4_fast) xp = ordered_input(x, cols_, InputOrder::kNibble16);
    for (int64_t r = r0; r < r1; r += kRows) {
      const int64_t nr = std::min(kRows, r1 - r);
      convert_to_f32(scale_bytes + size_t(r * n_groups) * dtype_size(scale_dtype_), scale_dtype_, s,
                     size_t(nr * n_groups));
      const uint8_t* rows[4];
      for (int64_t i = 0; i < nr; ++i) rows[i] = reinterpret_cast<const uint8_t*>(packed + (r + i) * words_per_row);
      with_rows(nr, [&]<int R>() {
        if (int4_fast) dot_int4_rows<R>(rows, s, n_groups, group_, xp, y + r);
        else dot_int8_rows<R>(rows, s, n_groups, group_, xp, y + r);
      });
    }
    return;
  }
#endif
  for (int64_t r = r0; r < r1; ++r) {
    convert_to_f32(scale_bytes + size_t(r * n_groups) * dtype_size(scale_dtype_), scale_dtype_, s, size_t(n_groups));
    y[r] = dot_packed_row(packed + r * words_per_row, s, x, cols_, b, group_);
  }
}

bool Linear::forward_rows_one_avx512(const float* x, float* y, int64_t r0, int64_t r1) const {
  const int64_t n_groups = cols_ / group_;
  switch (kind_) {
    case Kind::kBF16:
      // Only where every row starts on a cache line: split 512-bit loads made this kernel about 2x
      // slower than the AVX2 one (docs/perf-notes.md "## CPU decode").
      if (reinterpret_cast<uintptr_t>(data_) % 64 != 0 || (cols_ * 2) % 64 != 0) return false;
      avx512::bf16_rows(static_cast<const uint16_t*>(data_), cols_, ordered_input(x, cols_, InputOrder::kEvenOdd32), y,
                        r0, r1);
      return true;
    case Kind::kInt4:
      if (group_ % 32 != 0) return false;
      avx512::int4_rows(static_cast<const uint8_t*>(data_), packed_row_words(cols_, 4) * 4, scales_, scale_dtype_,
                        n_groups, group_, ordered_input(x, cols_, InputOrder::kEvenOdd32), y, r0, r1);
      return true;
    case Kind::kInt8:
      if (group_ % 16 != 0) return false;
      avx512::int8_rows(static_cast<const uint8_t*>(data_), packed_row_words(cols_, 8) * 4, scales_, scale_dtype_,
                        n_groups, group_, x, y, r0, r1);
      return true;
    default: return false;
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

int64_t count_row_items(std::span<const LinearJob> jobs, int64_t rows_per_item) {
  int64_t total = 0;
  for (const LinearJob& j : jobs) total += (j.linear->rows() + rows_per_item - 1) / rows_per_item;
  return total;
}

void run_row_item(std::span<const LinearJob> jobs, int64_t rows_per_item, int64_t item) {
  for (const LinearJob& j : jobs) {
    const Linear& l = *j.linear;
    const int64_t items = (l.rows() + rows_per_item - 1) / rows_per_item;
    if (item < items) {
      const int64_t r0 = item * rows_per_item;
      l.forward_rows(j.x, 1, j.y, l.rows(), r0, std::min(l.rows(), r0 + rows_per_item));
      return;
    }
    item -= items;
  }
  RTNQ_CHECK(false, "row item {} past the end of the job list", item);
}

namespace {

// Work of one phase for one participant ("slot"): items [begin, end), packed into one word so that
// the owner (taking from the front) and a thief (taking the back half) agree with one CAS.
struct alignas(64) SlotRange {
  std::atomic<uint64_t> range{0};
};
struct alignas(64) PhaseDone {
  std::atomic<int32_t> done{0};  // 32-bit so that waiting on it is a plain futex
};

constexpr uint64_t pack_range(uint32_t begin, uint32_t end) { return uint64_t(end) << 32 | begin; }
constexpr uint32_t range_begin(uint64_t r) { return uint32_t(r); }
constexpr uint32_t range_end(uint64_t r) { return uint32_t(r >> 32); }

// The next item for `slot`: the front of its own range, else the back half of the fullest other
// range (which becomes its own range, so it keeps walking forward from there).
bool take_item(SlotRange* ranges, int n_slots, int slot, int64_t& item) {
  std::atomic<uint64_t>& own = ranges[slot].range;
  for (uint64_t v = own.load(std::memory_order_acquire); range_begin(v) < range_end(v);) {
    if (own.compare_exchange_weak(v, pack_range(range_begin(v) + 1, range_end(v)), std::memory_order_acq_rel)) {
      item = range_begin(v);
      return true;
    }
  }
  for (;;) {
    int victim = -1;
    uint32_t most = 0;
    uint64_t seen = 0;
    for (int t = 0; t < n_slots; ++t) {
      if (t == slot) continue;
      const uint64_t v = ranges[t].range.load(std::memory_order_acquire);
      if (range_end(v) > range_begin(v) && range_end(v) - range_begin(v) > most) {
        most = range_end(v) - range_begin(v);
        victim = t;
        seen = v;
      }
    }
    if (victim < 0) return false;
    const uint32_t b = range_begin(seen), e = range_end(seen), mid = b + (e - b) / 2;
    if (ranges[victim].range.compare_exchange_strong(seen, pack_range(b, mid), std::memory_order_acq_rel)) {
      own.store(pack_range(mid + 1, e), std::memory_order_release);
      item = mid;
      return true;
    }
  }
}

}  // namespace

void run_phases(std::span<const int64_t> items_per_phase, const std::function<void(size_t, int64_t)>& fn,
                ThreadPool* pool) {
  const size_t n_phases = items_per_phase.size();
  for (int64_t items : items_per_phase) RTNQ_CHECK(0 <= items && items < (int64_t{1} << 31), "{} items in a phase", items);
  const int n_slots = pool == nullptr ? 1 : pool->size();
  // Each participant owns a contiguous share of every phase and walks it in order: one long weight
  // stream per thread, which the hardware prefetcher follows (items handed out one by one from a
  // shared counter interleave the threads every few KiB and were ~25% slower; docs/perf-notes.md).
  // A participant that runs dry steals half of what another has left, so the phase still balances.
  std::vector<SlotRange> ranges(n_phases * size_t(n_slots));
  std::vector<PhaseDone> done(n_phases);
  for (size_t p = 0; p < n_phases; ++p)
    for (int t = 0; t < n_slots; ++t)
      ranges[p * size_t(n_slots) + size_t(t)].range.store(
          pack_range(uint32_t(items_per_phase[p] * t / n_slots), uint32_t(items_per_phase[p] * (t + 1) / n_slots)),
          std::memory_order_relaxed);
  auto participate = [&](int64_t slot_begin, int64_t slot_end) {
    for (int64_t slot = slot_begin; slot < slot_end; ++slot) {
      for (size_t p = 0; p < n_phases; ++p) {
        // Never repeats on a thread, never 0 (0 means "not inside run_phases").
        thread_local uint64_t phases_seen = 0;
        t_phase_serial = ++phases_seen;
        const int64_t items = items_per_phase[p];
        std::atomic<int32_t>& d = done[p].done;
        int32_t mine = 0;
        for (int64_t i; take_item(&ranges[p * size_t(n_slots)], n_slots, int(slot), i); ++mine) fn(p, i);
        // One count per participant and phase, not per item: the counter's cache line would
        // otherwise bounce between the cores on every item.
        if (mine > 0 && d.fetch_add(mine, std::memory_order_acq_rel) + mine == items) d.notify_all();
        // Another thread still runs an item of this phase. Spin a little (on a quiet machine the
        // wait is a few microseconds), then sleep on the counter: on shared cores a spinning thread
        // takes the time slice its descheduled peer needs to finish the item.
        for (int spins = 0;; ++spins) {
          const int32_t now = d.load(std::memory_order_acquire);
          if (now >= items) break;
#if RTNQ_CPU_AVX2
          if (spins < 1000) {
            _mm_pause();
            continue;
          }
#endif
          d.wait(now, std::memory_order_acquire);
        }
      }
      t_phase_serial = 0;
    }
  };
  if (n_slots == 1) participate(0, 1);
  else pool->parallel_for(n_slots, 1, participate);
}

}  // namespace rtnq::cpu
