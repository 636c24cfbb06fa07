#include "rtnq/dtype.h"

#include <immintrin.h>

#include "core/check.h"

namespace rtnq {

namespace {
struct DTypeRow {
  DType t;
  size_t size;
  std::string_view name;
  std::string_view torch;
};
constexpr DTypeRow kTable[] = {
    {DType::kF32, 4, "F32", "float32"},  {DType::kF16, 2, "F16", "float16"},
    {DType::kBF16, 2, "BF16", "bfloat16"}, {DType::kF64, 8, "F64", "float64"},
    {DType::kI8, 1, "I8", "int8"},       {DType::kU8, 1, "U8", "uint8"},
    {DType::kI16, 2, "I16", "int16"},    {DType::kI32, 4, "I32", "int32"},
    {DType::kI64, 8, "I64", "int64"},    {DType::kBool, 1, "BOOL", "bool"},
};
const DTypeRow& row(DType t) {
  for (const auto& r : kTable)
    if (r.t == t) return r;
  RTNQ_CHECK(false, "unknown dtype {}", int(t));
  return kTable[0];
}
}  // namespace

size_t dtype_size(DType t) { return row(t).size; }
std::string_view dtype_name(DType t) { return row(t).name; }
std::string_view dtype_torch_name(DType t) { return row(t).torch; }

std::optional<DType> dtype_from_name(std::string_view n) {
  for (const auto& r : kTable)
    if (r.name == n) return r.t;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch_name(std::string_view n) {
  if (n.starts_with("torch.")) n.remove_prefix(6);
  for (const auto& r : kTable)
    if (r.torch == n) return r.t;
  if (n == "float") return DType::kF32;
  if (n == "half") return DType::kF16;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13));  // Inf / NaN
  if (exp == 0) {
    if (mant == 0) return bits_to_f32(sign);
    // Subnormal: value = mant * 2^-24, exact in fp32.
    float v = float(mant) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t b = f32_to_bits(f);
  const uint16_t sign = uint16_t((b >> 16) & 0x8000);
  b &= 0x7fffffffu;
  if (b > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (b >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to >= 65520: Inf
  if (b < 0x38800000u) {
    // Result is subnormal (or zero) in f16: scale into units of 2^-24 and round half to even.
    if (b < 0x33000000u) return sign;  // < 2^-25: rounds to zero
    const uint32_t e = b >> 23;
    const uint32_t m = (b & 0x7fffff) | 0x800000;
    const int s = int(126 - e);  // value = m * 2^(e-150); in units of 2^-24 that is m >> (126 - e)
    uint32_t q = m >> s;
    const uint32_t rem = m & ((1u << s) - 1);
    const uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return uint16_t(sign | q);
  }
  // Normal: rebias exponent, round mantissa to 10 bits, half to even (carry into exponent is right).
  uint32_t v = b - 0x38000000u;
  v += 0xfffu + ((v >> 13) & 1u);
  return uint16_t(sign | (v >> 13));
}

float round_to_dtype(float f, DType t) {
  switch (t) {
    case DType::kF32: return f;
    case DType::kBF16: return bf16_to_f32(f32_to_bf16(f));
    case DType::kF16: return f16_to_f32(f32_to_f16(f));
    default: RTNQ_CHECK(false, "round_to_dtype: {} is not a float type", dtype_name(t));
  }
  return f;
}

void convert_to_f32(const void* src, DType t, float* dst, size_t n) {
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, n * 4); return;
    case DType::kF64: {
      const double* s = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      size_t i = 0;
      for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
      }
      for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      size_t i = 0;
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
      for (; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default: RTNQ_CHECK(false, "convert_to_f32: {} is not a float type", dtype_name(t));
  }
}

void convert_from_f32(const float* src, DType t, void* dst, size_t n) {
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, n * 4); return;
    case DType::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::kF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    default: RTNQ_CHECK(false, "convert_from_f32: {} is not a float type", dtype_name(t));
  }
}

}  // namespace rtnq
