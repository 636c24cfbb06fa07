#include "quant/pack.h"

#include <immintrin.h>

#include <cstring>
#include <vector>

#include "core/check.h"

namespace rtnq {

namespace {

// Tail of a row (from element j0 on) the slow, obviously-right way: straight from pack-layout.h.
void pack_row_tail(const int8_t* q, int64_t j0, int64_t cols, int bits, int32_t* words) {
  const int64_t w0 = pack_word_index(j0, bits);
  const int64_t w_end = packed_row_words(cols, bits);
  for (int64_t w = w0; w < w_end; ++w) words[w] = 0;  // padding fields stay 0, as compressed-tensors pads
  for (int64_t j = j0; j < cols; ++j) {
    const uint32_t field = pack_stored_value(q[j], bits) << pack_bit_offset(j, bits);
    words[pack_word_index(j, bits)] = int32_t(uint32_t(words[pack_word_index(j, bits)]) | field);
  }
}

// One row. The vector body relies on the little-endian reading of the layout (pack-layout.h): INT8
// fields are the bytes q ^ 0x80; INT4 byte k is (q[2k] + 8) | (q[2k+1] + 8) << 4. 32 elements fill
// whole words for both widths, so the body never straddles the tail.
void pack_row(const int8_t* q, int64_t cols, int bits, int32_t* words) {
  auto* out = reinterpret_cast<uint8_t*>(words);
  int64_t j = 0;
  if (bits == 8) {
    const __m256i flip = _mm256_set1_epi8(char(0x80));
    for (; j + 32 <= cols; j += 32) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), _mm256_xor_si256(v, flip));
    }
  } else {
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i lo_hi = _mm256_set1_epi16(int16_t(1 | (16 << 8)));  // bytes {1, 16}: u_even + 16 * u_odd
    for (; j + 32 <= cols; j += 32) {
      const __m256i u = _mm256_add_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j)), eight);
      const __m256i pairs = _mm256_maddubs_epi16(u, lo_hi);  // 16 x i16, each <= 255
      const __m256i bytes = _mm256_packus_epi16(pairs, pairs);
      const __m256i ordered = _mm256_permute4x64_epi64(bytes, _MM_SHUFFLE(3, 1, 2, 0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j / 2), _mm256_castsi256_si128(ordered));
    }
  }
  if (j < cols) pack_row_tail(q, j, cols, bits, words);
}

void unpack_row(const int32_t* words, int64_t cols, int bits, int8_t* q) {
  const auto* in = reinterpret_cast<const uint8_t*>(words);
  int64_t j = 0;
  if (bits == 8) {
    const __m256i flip = _mm256_set1_epi8(char(0x80));
    for (; j + 32 <= cols; j += 32) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + j));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), _mm256_xor_si256(v, flip));
    }
  } else {
    for (; j + 2 <= cols; j += 2) {
      const uint8_t b = in[j / 2];
      q[j] = int8_t(int(b & 15) - 8);
      q[j + 1] = int8_t(int(b >> 4) - 8);
    }
  }
  for (; j < cols; ++j)
    q[j] = int8_t(pack_signed_value(uint32_t(words[pack_word_index(j, bits)]) >> pack_bit_offset(j, bits), bits));
}

float scale_at(const void* scales, DType t, int64_t i) {
  switch (t) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, static_cast<const uint8_t*>(scales) + i * 4, 4);
      return f;
    }
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const uint8_t*>(scales) + i * 2, 2);
      return bf16_to_f32(h);
    }
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const uint8_t*>(scales) + i * 2, 2);
      return f16_to_f32(h);
    }
    default: RTNQ_CHECK(false, "dequantize_rows: scale dtype {} is not F32/F16/BF16", dtype_name(t));
  }
  return 0.0f;
}

void check_args(int64_t rows, int64_t cols, int bits) {
  RTNQ_CHECK(bits == 4 || bits == 8, "packing supports 4 or 8 bits, got {}", bits);
  RTNQ_CHECK(rows >= 0 && cols > 0, "bad shape [{}, {}]", rows, cols);
}

}  // namespace

void pack_int32(const int8_t* q, int64_t rows, int64_t cols, int bits, int32_t* packed) {
  check_args(rows, cols, bits);
  const int64_t words = packed_row_words(cols, bits);
  for (int64_t r = 0; r < rows; ++r) pack_row(q + r * cols, cols, bits, packed + r * words);
}

void unpack_int32(const int32_t* packed, int64_t rows, int64_t cols, int bits, int8_t* q) {
  check_args(rows, cols, bits);
  const int64_t words = packed_row_words(cols, bits);
  for (int64_t r = 0; r < rows; ++r) unpack_row(packed + r * words, cols, bits, q + r * cols);
}

void dequantize_rows(const int32_t* packed, const void* scales, DType scale_dtype, int64_t rows, int64_t cols,
                     int bits, int64_t group_size, float* out) {
  check_args(rows, cols, bits);
  const int64_t group = effective_group(group_size, cols);
  RTNQ_CHECK(group > 0 && cols % group == 0, "group size {} does not divide {} columns", group_size, cols);
  const int64_t n_groups = cols / group;
  const int64_t words = packed_row_words(cols, bits);
  std::vector<int8_t> q(size_t(cols) + 32);
  for (int64_t r = 0; r < rows; ++r) {
    unpack_row(packed + r * words, cols, bits, q.data());
    float* o = out + r * cols;
    for (int64_t g = 0; g < n_groups; ++g) {
      const float s = scale_at(scales, scale_dtype, r * n_groups + g);
      const __m256 sv = _mm256_set1_ps(s);
      int64_t j = g * group;
      const int64_t end = j + group;
      for (; j + 8 <= end; j += 8) {
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q.data() + j));
        _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), sv));
      }
      for (; j < end; ++j) o[j] = float(q[size_t(j)]) * s;
    }
  }
}

}  // namespace rtnq
