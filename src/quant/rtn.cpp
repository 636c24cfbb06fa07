// rtn_quantize: the fast path. Reads F32/F16/BF16 straight from the (usually memory-mapped) view,
// and in one pass over the input computes absmax, scales, q, the packed words and the error
// statistics. It must equal rtn_quantize_ref (rtn-ref.cpp, which explains the arithmetic) bit for
// bit, so every step below is the same IEEE operation as there, merely eight lanes at a time:
// a true division (never a reciprocal), the same rounding of the quotient to the weight dtype, the
// same round-half-even and clamp.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "core/thread-pool.h"
#include "quant/pack.h"
#include "rtnq/quant.h"

namespace rtnq {

namespace {

struct RowStats {
  double sum_sq_error = 0.0;
  double sum_sq_weight = 0.0;
  double max_abs_error = 0.0;
};

enum class RowError : uint8_t { kNone, kNonFinite, kScaleOverflow };
struct RowResult {
  RowError error = RowError::kNone;
  int64_t col = 0;  // first non-finite column, or the overflowing group's first column
  float absmax = 0.0f;
};

// ---- input element types -------------------------------------------------------------------
template <DType T>
struct Input;

template <>
struct Input<DType::kF32> {
  static float load1(const void* p, int64_t j) { return static_cast<const float*>(p)[j]; }
  static __m256 load8(const void* p, int64_t j) { return _mm256_loadu_ps(static_cast<const float*>(p) + j); }
  // Largest |w| as bit patterns: non-negative floats order like their bits, and Inf/NaN sort last.
  static uint32_t absmax_bits(const void* p, int64_t begin, int64_t end) {
    const auto* u = static_cast<const uint32_t*>(p);
    const __m256i mask = _mm256_set1_epi32(0x7fffffff);
    __m256i m = _mm256_setzero_si256();
    int64_t j = begin;
    for (; j + 8 <= end; j += 8)
      m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + j)), mask));
    __m128i h = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    h = _mm_max_epu32(h, _mm_srli_si128(h, 8));
    h = _mm_max_epu32(h, _mm_srli_si128(h, 4));
    uint32_t best = uint32_t(_mm_cvtsi128_si32(h));
    for (; j < end; ++j) best = std::max(best, u[j] & 0x7fffffffu);
    return best;
  }
  static bool bits_finite(uint32_t b) { return b < 0x7f800000u; }
  static float bits_value(uint32_t b) { return bits_to_f32(b); }
};

// BF16 and F16 share the 16-bit absmax scan; they differ in where Inf starts and how to widen.
inline uint32_t absmax_bits16(const void* p, int64_t begin, int64_t end) {
  const auto* u = static_cast<const uint16_t*>(p);
  const __m256i mask = _mm256_set1_epi16(0x7fff);
  __m256i m = _mm256_setzero_si256();
  int64_t j = begin;
  for (; j + 16 <= end; j += 16)
    m = _mm256_max_epu16(m, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + j)), mask));
  __m128i h = _mm_max_epu16(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
  h = _mm_max_epu16(h, _mm_srli_si128(h, 8));
  h = _mm_max_epu16(h, _mm_srli_si128(h, 4));
  h = _mm_max_epu16(h, _mm_srli_si128(h, 2));
  uint32_t best = uint32_t(_mm_extract_epi16(h, 0));
  for (; j < end; ++j) best = std::max<uint32_t>(best, u[j] & 0x7fffu);
  return best;
}

template <>
struct Input<DType::kBF16> {
  static float load1(const void* p, int64_t j) { return bf16_to_f32(static_cast<const uint16_t*>(p)[j]); }
  static __m256 load8(const void* p, int64_t j) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + j));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static uint32_t absmax_bits(const void* p, int64_t begin, int64_t end) { return absmax_bits16(p, begin, end); }
  static bool bits_finite(uint32_t b) { return b < 0x7f80u; }
  static float bits_value(uint32_t b) { return bf16_to_f32(uint16_t(b)); }
};

template <>
struct Input<DType::kF16> {
  static float load1(const void* p, int64_t j) { return f16_to_f32(static_cast<const uint16_t*>(p)[j]); }
  static __m256 load8(const void* p, int64_t j) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + j)));
  }
  static uint32_t absmax_bits(const void* p, int64_t begin, int64_t end) { return absmax_bits16(p, begin, end); }
  static bool bits_finite(uint32_t b) { return b < 0x7c00u; }
  static float bits_value(uint32_t b) { return f16_to_f32(uint16_t(b)); }
};

// ---- rounding of the quotient to the dtype torch computes it in ----------------------------
template <DType Q>
inline __m256 round_quotient(__m256 x) {
  if constexpr (Q == DType::kBF16) {
    // Round to nearest even on the bits, exactly f32_to_bf16 for finite values (quotients here are
    // always finite: w is finite and s is a nonzero finite scale).
    __m256i b = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    b = _mm256_add_epi32(b, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
    return _mm256_castsi256_ps(_mm256_and_si256(b, _mm256_set1_epi32(int32_t(0xffff0000u))));
  } else if constexpr (Q == DType::kF16) {
    // F16C converts with round-to-nearest-even, subnormals included, like f32_to_f16.
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    return x;
  }
}

inline double hsum_pd(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
inline float hmax_ps(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
inline __m256d widen_add(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

// Per-row kernel: q (int8, cols) and scales (fp32, n_groups) of one row, plus its statistics.
template <DType In, DType Q>
RowResult quantize_row(const void* row, int64_t cols, int64_t group, int bits, DType scale_dtype, int8_t* q,
                       float* scales, RowStats* stats) {
  using I = Input<In>;
  const float max_abs_q = float(pack_offset(bits)) - 0.5f;
  const float lo = float(q_min(bits)), hi = float(q_max(bits));
  const __m256 lo_v = _mm256_set1_ps(lo), hi_v = _mm256_set1_ps(hi);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256d sse_d = _mm256_setzero_pd(), ssw_d = _mm256_setzero_pd();
  __m256 max_e = _mm256_setzero_ps();
  double sse_tail = 0.0, ssw_tail = 0.0, max_tail = 0.0;

  const int64_t n_groups = cols / group;
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t begin = g * group, end = begin + group;
    const uint32_t amax_bits = I::absmax_bits(row, begin, end);
    if (!I::bits_finite(amax_bits)) {
      for (int64_t j = begin; j < end; ++j)
        if (!std::isfinite(I::load1(row, j))) return {RowError::kNonFinite, j, 0.0f};
    }
    const float absmax = I::bits_value(amax_bits);
    const float s = round_to_dtype(absmax / max_abs_q, scale_dtype);
    if (std::isinf(s)) return {RowError::kScaleOverflow, begin, absmax};
    scales[g] = s;

    if (s == 0.0f) {  // all-zero group (or an F16 scale underflow): q = 0, the error is w itself
      for (int64_t j = begin; j < end; ++j) {
        const double w = I::load1(row, j);
        q[j] = 0;
        sse_tail += w * w;
        ssw_tail += w * w;
        max_tail = std::max(max_tail, std::fabs(w));
      }
      continue;
    }

    const __m256 s_v = _mm256_set1_ps(s);
    // q for 8 weights; also hands back w and the error e = w - q*s (one rounding, via FMA).
    auto quant8 = [&](int64_t j, __m256& w, __m256& e) {
      w = I::load8(row, j);
      const __m256 x = round_quotient<Q>(_mm256_div_ps(w, s_v));
      __m256 r = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm256_min_ps(_mm256_max_ps(r, lo_v), hi_v);
      e = _mm256_fnmadd_ps(r, s_v, w);
      return _mm256_cvtps_epi32(r);
    };

    // Statistics: squares summed in fp32 over at most 256 weights, then widened into the fp64 row
    // sums. Within a 32-weight block the partial sums and maxima form short trees, so the only
    // loop-carried chains are one add/max per block (long FMA chains would cap the throughput).
    int64_t j = begin;
    while (end - j >= 8) {
      const int64_t chunk_end = std::min(end, j + 256);
      __m256 acc_e = _mm256_setzero_ps(), acc_w = _mm256_setzero_ps();
      for (; j + 32 <= chunk_end; j += 32) {
        __m256 w0, e0, w1, e1, w2, e2, w3, e3;
        const __m256i q0 = quant8(j, w0, e0), q1 = quant8(j + 8, w1, e1);
        const __m256i q01 = _mm256_packs_epi32(q0, q1);
        __m256 se = _mm256_fmadd_ps(e1, e1, _mm256_mul_ps(e0, e0));
        __m256 sw = _mm256_fmadd_ps(w1, w1, _mm256_mul_ps(w0, w0));
        __m256 m = _mm256_max_ps(_mm256_and_ps(e0, abs_mask), _mm256_and_ps(e1, abs_mask));
        const __m256i q2 = quant8(j + 16, w2, e2), q3 = quant8(j + 24, w3, e3);
        const __m256i b = _mm256_packs_epi16(q01, _mm256_packs_epi32(q2, q3));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), _mm256_permutevar8x32_epi32(b, order));
        se = _mm256_add_ps(se, _mm256_fmadd_ps(e3, e3, _mm256_mul_ps(e2, e2)));
        sw = _mm256_add_ps(sw, _mm256_fmadd_ps(w3, w3, _mm256_mul_ps(w2, w2)));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_and_ps(e2, abs_mask), _mm256_and_ps(e3, abs_mask)));
        acc_e = _mm256_add_ps(acc_e, se);
        acc_w = _mm256_add_ps(acc_w, sw);
        max_e = _mm256_max_ps(max_e, m);
      }
      for (; j + 8 <= chunk_end; j += 8) {
        __m256 w0, e0;
        alignas(32) int32_t qi[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(qi), quant8(j, w0, e0));
        for (int k = 0; k < 8; ++k) q[j + k] = int8_t(qi[k]);
        acc_e = _mm256_fmadd_ps(e0, e0, acc_e);
        acc_w = _mm256_fmadd_ps(w0, w0, acc_w);
        max_e = _mm256_max_ps(max_e, _mm256_and_ps(e0, abs_mask));
      }
      sse_d = widen_add(sse_d, acc_e);
      ssw_d = widen_add(ssw_d, acc_w);
    }
    for (; j < end; ++j) {  // the reference's scalar steps verbatim
      const float w = I::load1(row, j);
      const float x = round_to_dtype(w / s, Q);
      const float r = std::fmin(std::fmax(std::nearbyint(x), lo), hi);
      q[j] = int8_t(r);
      const double e = double(w) - double(r) * double(s);
      sse_tail += e * e;
      ssw_tail += double(w) * double(w);
      max_tail = std::max(max_tail, std::fabs(e));
    }
  }
  stats->sum_sq_error = hsum_pd(sse_d) + sse_tail;
  stats->sum_sq_weight = hsum_pd(ssw_d) + ssw_tail;
  stats->max_abs_error = std::max(double(hmax_ps(max_e)), max_tail);
  return {};
}

using RowFn = RowResult (*)(const void*, int64_t, int64_t, int, DType, int8_t*, float*, RowStats*);

template <DType In>
RowFn pick_quotient(DType quotient) {
  switch (quotient) {
    case DType::kBF16: return &quantize_row<In, DType::kBF16>;
    case DType::kF16: return &quantize_row<In, DType::kF16>;
    default: return &quantize_row<In, DType::kF32>;
  }
}

RowFn pick_row_fn(DType in, DType quotient) {
  switch (in) {
    case DType::kF32: return pick_quotient<DType::kF32>(quotient);
    case DType::kF16: return pick_quotient<DType::kF16>(quotient);
    default: return pick_quotient<DType::kBF16>(quotient);
  }
}

void store_scales(const float* s, int64_t n, DType t, uint8_t* dst) {
  // Each scale is already exactly representable in `t`, so these conversions are exact.
  switch (t) {
    case DType::kF32: std::memcpy(dst, s, size_t(n) * 4); return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = uint16_t(f32_to_bits(s[i]) >> 16);
        std::memcpy(dst + i * 2, &h, 2);
      }
      return;
    default:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(s[i]);
        std::memcpy(dst + i * 2, &h, 2);
      }
      return;
  }
}

bool is_rtn_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

Expected<QuantizedTensor> rtn_quantize(const TensorView& w, int bits, int64_t group_size, DType scale_dtype,
                                       ThreadPool* pool) {
  const std::string& name = w.info.name;
  auto fail = [&](const std::string& what) { return invalid_argument(fmt::format("tensor '{}': {}", name, what)); };
  if (bits != 4 && bits != 8) return fail(fmt::format("RTN supports 4 or 8 bits, got {}", bits));
  if (w.info.shape.size() != 2)
    return fail(fmt::format("RTN needs a 2-D weight [out, in], got shape {}", shape_to_string(w.info.shape)));
  if (!is_rtn_float(w.info.dtype))
    return unsupported(fmt::format("tensor '{}': RTN reads F32, F16 or BF16 weights, got {}", name,
                                   dtype_name(w.info.dtype)));
  if (!is_rtn_float(scale_dtype)) return fail(fmt::format("scale dtype must be F32, F16 or BF16, got {}", dtype_name(scale_dtype)));
  const int64_t rows = w.info.shape[0], cols = w.info.shape[1];
  if (rows < 0 || cols <= 0) return fail(fmt::format("RTN needs at least one input column, got shape {}", shape_to_string(w.info.shape)));
  if (group_size != kPerChannel && (group_size <= 0 || cols % group_size != 0))
    return fail(fmt::format("group size {} does not divide the {} input columns", group_size, cols));
  if (rows > 0 && w.data == nullptr) return fail("view has no data");

  QuantizedTensor out;
  out.bits = bits;
  out.group_size = group_size;
  out.rows = rows;
  out.cols = cols;
  out.scale_dtype = scale_dtype;
  const int64_t group = effective_group(group_size, cols);
  const int64_t n_groups = cols / group;
  const int64_t words = packed_row_words(cols, bits);
  out.packed.resize(size_t(rows * words));
  out.scales.resize(size_t(rows * n_groups) * dtype_size(scale_dtype));

  const RowFn row_fn = pick_row_fn(w.info.dtype, rtn_quotient_dtype(w.info.dtype, scale_dtype));
  const size_t in_row_bytes = size_t(cols) * dtype_size(w.info.dtype);
  const size_t scale_row_bytes = size_t(n_groups) * dtype_size(scale_dtype);
  const auto* in = static_cast<const uint8_t*>(w.data);
  std::vector<RowStats> stats(static_cast<size_t>(rows));

  std::mutex err_mu;
  RowResult first_err;
  int64_t first_err_row = std::numeric_limits<int64_t>::max();

  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<int8_t> q(static_cast<size_t>(cols));
    std::vector<float> s(static_cast<size_t>(n_groups));
    for (int64_t r = r0; r < r1; ++r) {
      const RowResult res = row_fn(in + size_t(r) * in_row_bytes, cols, group, bits, scale_dtype, q.data(), s.data(),
                                   &stats[size_t(r)]);
      if (res.error != RowError::kNone) {
        // Keep the first bad row by index so the message does not depend on thread timing.
        std::lock_guard<std::mutex> lock(err_mu);
        if (r < first_err_row) {
          first_err_row = r;
          first_err = res;
        }
        return;
      }
      pack_int32(q.data(), 1, cols, bits, out.packed.data() + r * words);
      store_scales(s.data(), n_groups, scale_dtype, out.scales.data() + size_t(r) * scale_row_bytes);
    }
  };
  // Chunks of about 256K weights: big enough to amortise the pool, small enough to balance.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / cols);
  if (pool) {
    pool->parallel_for(rows, grain, work);
  } else {
    work(0, rows);
  }

  if (first_err_row != std::numeric_limits<int64_t>::max()) {
    const int64_t r = first_err_row, c = first_err.col;
    if (first_err.error == RowError::kNonFinite) {
      const size_t esz = dtype_size(w.info.dtype);
      float v = 0.0f;
      const uint8_t* p = in + size_t(r) * in_row_bytes + size_t(c) * esz;
      if (w.info.dtype == DType::kF32) {
        std::memcpy(&v, p, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, p, 2);
        v = w.info.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      return fail(fmt::format("weight at flat index {} (row {}, col {}) is {}; RTN needs finite weights", r * cols + c,
                              r, c, v));
    }
    return fail(fmt::format("row {} group {}: scale {} / {} overflows {}", r, c / group, first_err.absmax,
                            float(pack_offset(bits)) - 0.5f, dtype_name(scale_dtype)));
  }

  // Row order, whatever the thread count: the sums are deterministic.
  for (const RowStats& st : stats) {
    out.sum_sq_error += st.sum_sq_error;
    out.sum_sq_weight += st.sum_sq_weight;
    out.max_abs_error = std::max(out.max_abs_error, st.max_abs_error);
  }
  return out;
}

}  // namespace rtnq
