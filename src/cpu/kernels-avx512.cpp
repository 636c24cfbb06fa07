#include "cpu/kernels-avx512.h"

#include "core/check.h"

#include <type_traits>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge source, which
// -Wmaybe-uninitialized reports inside the header; nothing here reads an undefined value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define RTNQ_HAVE_AVX512_KERNELS 1
#define RTNQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#else
#define RTNQ_HAVE_AVX512_KERNELS 0
#endif

namespace rtnq::cpu::avx512 {

#if RTNQ_HAVE_AVX512_KERNELS
namespace {

// Integers become floats without a convert instruction: OR-ing a small unsigned u < 2^23 into the
// mantissa of 2^23 (bit pattern 0x4B000000) gives the float 2^23 + u exactly, and subtracting a
// constant from it is exact as well. So the stored field minus the pack offset arrives as an exact
// float in two cheap ops, the offset included.
constexpr int32_t kMagic = 0x4B000000;  // the float 2^23

template <DType S>
RTNQ_AVX512 inline float scale_at(const void* s, int64_t i) {
  if constexpr (S == DType::kF32) return static_cast<const float*>(s)[i];
  else if constexpr (S == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(s)[i]);
  else return _cvtsh_ss(static_cast<const uint16_t*>(s)[i]);
}

template <DType S>
constexpr int64_t scale_bytes() {
  return S == DType::kF32 ? 4 : 2;
}

// 32 INT4 weights (16 bytes: byte b = element 2b in the low nibble, 2b+1 in the high one) against
// x even/odd ordered (permute_even_odd). Widening byte b to dword lane b gives d = lo + 16 hi; then
//   L = (d & 0xF) | bits(2^23 + 128)      = 2^23 + 128 + lo         (one vpternlogd)
//   F = d | bits(2^23)                    = 2^23 + lo + 16 hi
//   L - (2^23 + 136)                      = lo - 8                  = q_even (exact)
//   F - L                                 = 16 hi - 128             = 16 q_odd (exact)
// The odd accumulator therefore holds 16x the sum, which is taken out exactly (a power of two) when
// the group is reduced.
RTNQ_AVX512 inline void int4_block32(const uint8_t* p, const float* x, __m512& lo_acc, __m512& hi_acc) {
  const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m512 l = _mm512_castsi512_ps(
      _mm512_ternarylogic_epi32(d, _mm512_set1_epi32(0xF), _mm512_set1_epi32(kMagic | 0x80), 0xEA));  // (a&b)|c
  const __m512 f = _mm512_castsi512_ps(_mm512_or_si512(d, _mm512_set1_epi32(kMagic)));
  lo_acc = _mm512_fmadd_ps(_mm512_sub_ps(l, _mm512_set1_ps(8388744.0f)), _mm512_loadu_ps(x), lo_acc);
  hi_acc = _mm512_fmadd_ps(_mm512_sub_ps(f, l), _mm512_loadu_ps(x + 16), hi_acc);
}

template <DType S>
RTNQ_AVX512 void int4_rows_t(const uint8_t* packed, int64_t bytes_per_row, const void* scales, int64_t n_groups,
                             int64_t group, const float* xp, float* y, int64_t r0, int64_t r1) {
  const __m512 sixteenth = _mm512_set1_ps(0.0625f);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* p = packed + r * bytes_per_row;
    const void* s = static_cast<const uint8_t*>(scales) + r * n_groups * scale_bytes<S>();
    // Two running totals (even and odd groups) so that small groups do not serialise on one FMA chain.
    __m512 tot[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t g = 0; g < n_groups; ++g) {
      const uint8_t* pg = p + g * group / 2;
      const float* xg = xp + g * group;
      __m512 l0 = _mm512_setzero_ps(), h0 = _mm512_setzero_ps(), l1 = _mm512_setzero_ps(), h1 = _mm512_setzero_ps();
      int64_t j = 0;
      for (; j + 64 <= group; j += 64) {
        int4_block32(pg + j / 2, xg + j, l0, h0);
        int4_block32(pg + j / 2 + 16, xg + j + 32, l1, h1);
      }
      if (j < group) int4_block32(pg + j / 2, xg + j, l0, h0);
      const __m512 sum = _mm512_fmadd_ps(_mm512_add_ps(h0, h1), sixteenth, _mm512_add_ps(l0, l1));
      tot[g & 1] = _mm512_fmadd_ps(sum, _mm512_set1_ps(scale_at<S>(s, g)), tot[g & 1]);
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(tot[0], tot[1]));
  }
}

// 16 INT8 weights: the stored byte is q + 128, widened to 2^23 + q + 128 and shifted back exactly.
RTNQ_AVX512 inline __m512 int8_q(const uint8_t* p) {
  const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_sub_ps(_mm512_castsi512_ps(_mm512_or_si512(d, _mm512_set1_epi32(kMagic))), _mm512_set1_ps(8388736.0f));
}

template <DType S>
RTNQ_AVX512 void int8_rows_t(const uint8_t* packed, int64_t bytes_per_row, const void* scales, int64_t n_groups,
                             int64_t group, const float* x, float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* p = packed + r * bytes_per_row;
    const void* s = static_cast<const uint8_t*>(scales) + r * n_groups * scale_bytes<S>();
    __m512 tot[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t g = 0; g < n_groups; ++g) {
      const uint8_t* pg = p + g * group;
      const float* xg = x + g * group;
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      int64_t j = 0;
      for (; j + 32 <= group; j += 32) {
        a0 = _mm512_fmadd_ps(int8_q(pg + j), _mm512_loadu_ps(xg + j), a0);
        a1 = _mm512_fmadd_ps(int8_q(pg + j + 16), _mm512_loadu_ps(xg + j + 16), a1);
      }
      if (j < group) a0 = _mm512_fmadd_ps(int8_q(pg + j), _mm512_loadu_ps(xg + j), a0);
      tot[g & 1] = _mm512_fmadd_ps(_mm512_add_ps(a0, a1), _mm512_set1_ps(scale_at<S>(s, g)), tot[g & 1]);
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(tot[0], tot[1]));
  }
}

// 32 BF16 weights = 16 dwords, dword k holding element 2k in its low half and 2k+1 in its high half:
// a BF16 value is the top half of its fp32, so a shift gives the even elements and a mask the odd.
RTNQ_AVX512 inline void bf16_block(const uint16_t* w, const float* x, __m512& even_acc, __m512& odd_acc) {
  const __m512i v = _mm512_loadu_si512(w);
  even_acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_loadu_ps(x), even_acc);
  odd_acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int32_t(0xFFFF0000u)))),
                            _mm512_loadu_ps(x + 16), odd_acc);
}

}  // namespace

RTNQ_AVX512 void permute_even_odd(const float* x, int64_t cols, float* out) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  int64_t b = 0;
  for (; b + 32 <= cols; b += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + b), v1 = _mm512_loadu_ps(x + b + 16);
    _mm512_storeu_ps(out + b, _mm512_permutex2var_ps(v0, even, v1));
    _mm512_storeu_ps(out + b + 16, _mm512_permutex2var_ps(v0, odd, v1));
  }
  for (; b < cols; ++b) out[b] = x[b];
}

namespace {
// f(std::integral_constant<DType, D>{}) for the scale dtype D: the kernels are instantiated per scale dtype.
template <typename F>
void with_scale_dtype(DType scale_dtype, F&& f) {
  switch (scale_dtype) {
    case DType::kF32: f(std::integral_constant<DType, DType::kF32>{}); return;
    case DType::kF16: f(std::integral_constant<DType, DType::kF16>{}); return;
    case DType::kBF16: f(std::integral_constant<DType, DType::kBF16>{}); return;
    default: RTNQ_CHECK(false, "scale dtype {}", dtype_name(scale_dtype));
  }
}
}  // namespace

void int4_rows(const uint8_t* packed, int64_t bytes_per_row, const void* scales, DType scale_dtype, int64_t n_groups,
               int64_t group, const float* xp, float* y, int64_t r0, int64_t r1) {
  RTNQ_CHECK(group % 32 == 0 && group > 0, "INT4 AVX-512 kernel needs group % 32 == 0, got {}", group);
  with_scale_dtype(scale_dtype, [&](auto d) {
    int4_rows_t<decltype(d)::value>(packed, bytes_per_row, scales, n_groups, group, xp, y, r0, r1);
  });
}

void int8_rows(const uint8_t* packed, int64_t bytes_per_row, const void* scales, DType scale_dtype, int64_t n_groups,
               int64_t group, const float* x, float* y, int64_t r0, int64_t r1) {
  RTNQ_CHECK(group % 16 == 0 && group > 0, "INT8 AVX-512 kernel needs group % 16 == 0, got {}", group);
  with_scale_dtype(scale_dtype, [&](auto d) {
    int8_rows_t<decltype(d)::value>(packed, bytes_per_row, scales, n_groups, group, x, y, r0, r1);
  });
}

RTNQ_AVX512 void bf16_rows(const uint16_t* w, int64_t cols, const float* xp, float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* row = w + r * cols;
    __m512 e0 = _mm512_setzero_ps(), o0 = _mm512_setzero_ps(), e1 = _mm512_setzero_ps(), o1 = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 64 <= cols; c += 64) {
      bf16_block(row + c, xp + c, e0, o0);
      bf16_block(row + c + 32, xp + c + 32, e1, o1);
    }
    if (c + 32 <= cols) {
      bf16_block(row + c, xp + c, e0, o0);
      c += 32;
    }
    float t = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(e0, o0), _mm512_add_ps(e1, o1)));
    for (; c < cols; ++c) t += bf16_to_f32(row[c]) * xp[c];
    y[r] = t;
  }
}

#else  // no AVX-512 kernels in this build; isa_supported(kAvx512) is false, so these are never called

void permute_even_odd(const float*, int64_t, float*) { RTNQ_CHECK(false, "AVX-512 kernels not built"); }
void int4_rows(const uint8_t*, int64_t, const void*, DType, int64_t, int64_t, const float*, float*, int64_t, int64_t) {
  RTNQ_CHECK(false, "AVX-512 kernels not built");
}
void int8_rows(const uint8_t*, int64_t, const void*, DType, int64_t, int64_t, const float*, float*, int64_t, int64_t) {
  RTNQ_CHECK(false, "AVX-512 kernels not built");
}
void bf16_rows(const uint16_t*, int64_t, const float*, float*, int64_t, int64_t) {
  RTNQ_CHECK(false, "AVX-512 kernels not built");
}

#endif

}  // namespace rtnq::cpu::avx512
