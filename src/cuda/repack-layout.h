// The GPU ("Marlin-style") layout of packed INT4/INT8 weights and their scales, derived from the checkpoint
// layout of quant/pack-layout.h, plus the CPU reference repack that the GPU repack must equal bit for bit.
//
// Why this order: the mixed-precision GEMM feeds `mma.sync.m16n8k16` with B fragments that it dequantizes in
// registers. Storing the integers in exactly the order each lane consumes them lets a lane fetch all of its
// weights for a 16(k) x 64(n) unit with ONE 16-byte load (INT4; two for INT8), and lets the dequantization be a
// handful of bit operations instead of shuffles.
//
// Terms. W is [N = out_features, K = in_features]; the GEMM computes C[m, n] = sum_k A[m, k] * q[n, k] * s[n, g(k)].
// Both dimensions are padded: K to kRepackKAlign, N to kRepackNAlign. Padded elements hold q = 0 (so a padded
// weight contributes exactly nothing), padded scales hold 0.
//
// A "unit" is 16 k x 64 n. Units are stored strip by strip: strip = n / 64, and inside a strip unit by unit
// along k, so one strip's weights for a k range are contiguous. Inside a unit: 32 lanes x `bits` words each,
// lane-major. For element (n, k) inside its unit (nn = n % 64, kk = k % 16):
//   s = nn / 16 (16-column slice), j = (nn % 16) / 8 (which n8 mma tile), r = nn % 8 (mma groupID),
//   kh = kk / 8 (which B register of the pair), t = (kk % 8) / 2 (threadID_in_group), hi = kk % 2,
//   lane = 4 r + t.
//   INT4: word s of the lane, nibble p = (2 j + kh) + 4 hi. Then ((word >> 4p) & 0x000f000f) yields B register
//         (2 j + kh) as two 16-bit lanes (lo = k even, hi = k odd), ready for the 0x6400 / 0x4300 magic.
//   INT8: word 2 s + j of the lane, byte b = 2 kh + hi; a byte permute (prmt) places each register's pair.
// Stored fields are unsigned (q + 2^(bits-1)), as in the checkpoint.
//
// Scales: [G][N_pad] in the activation dtype, with each 64-column strip permuted so that the 8 scales one lane
// needs (slices s = 0..3, tiles j = 0..1 at its r) are 8 contiguous values (one 16-byte load):
//   index = g * N_pad + (n / 64) * 64 + r * 8 + s * 2 + j.
#pragma once

#include <cstdint>
#include <cstring>

#include "quant/pack-layout.h"

#if defined(__CUDACC__)
#define RTNQ_HD __host__ __device__ __forceinline__
#else
#define RTNQ_HD inline
#endif

namespace rtnq::cuda {

// The GEMM kernel's k tile and n tile: padding to them means the kernel never needs a partial weight tile.
inline constexpr int64_t kRepackKAlign = 128;
inline constexpr int64_t kRepackNAlign = 128;
inline constexpr int kUnitK = 16;
inline constexpr int kUnitN = 64;

RTNQ_HD int64_t round_up_to(int64_t x, int64_t a) { return (x + a - 1) / a * a; }
// 32-bit words one lane holds per unit: 16*64*bits/(32*32) = bits.
RTNQ_HD int repack_words_per_lane(int bits) { return bits; }

// Shape bookkeeping of one repacked weight.
struct RepackShape {
  int64_t n = 0, k = 0;       // logical
  int64_t n_pad = 0, k_pad = 0;
  int bits = 4;
  int64_t group = 0;          // effective group length along k (>= k_pad means one group per row)
  int64_t num_groups = 0;     // scale rows in the checkpoint
};

// group_size: a positive length or a value <= 0 for per-channel (one group per row, see rtnq::kPerChannel).
// Groups are ceil(k / group) as compressed-tensors stores them.
RTNQ_HD RepackShape make_repack_shape(int64_t n, int64_t k, int bits, int64_t group_size) {
  RepackShape s;
  s.n = n;
  s.k = k;
  s.bits = bits;
  s.n_pad = round_up_to(n, kRepackNAlign);
  s.k_pad = round_up_to(k, kRepackKAlign);
  if (group_size <= 0 || group_size >= k) {
    s.group = s.k_pad;
    s.num_groups = 1;
  } else {
    s.group = group_size;
    s.num_groups = (k + group_size - 1) / group_size;
  }
  return s;
}
RTNQ_HD int64_t repacked_weight_words(const RepackShape& s) { return s.n_pad * s.k_pad * s.bits / 32; }
RTNQ_HD int64_t repacked_scale_count(const RepackShape& s) { return s.num_groups * s.n_pad; }

// Word index and bit offset of element (n, k) in the repacked stream.
struct RepackSlot {
  int64_t word;
  int bit;
};
RTNQ_HD RepackSlot repack_slot(const RepackShape& s, int64_t n, int64_t k) {
  const int64_t strip = n / kUnitN, unit = k / kUnitK;
  const int nn = int(n % kUnitN), kk = int(k % kUnitK);
  const int sl = nn / 16, j = (nn % 16) / 8, r = nn % 8;
  const int kh = kk / 8, t = (kk % 8) / 2, hi = kk % 2;
  const int lane = 4 * r + t;
  const int64_t lane_base = ((strip * (s.k_pad / kUnitK) + unit) * 32 + lane) * s.bits;
  if (s.bits == 4) return {lane_base + sl, 4 * ((2 * j + kh) + 4 * hi)};
  return {lane_base + 2 * sl + j, 8 * (2 * kh + hi)};
}
RTNQ_HD int64_t repack_scale_index(const RepackShape& s, int64_t g, int64_t n) {
  const int nn = int(n % kUnitN);
  const int sl = nn / 16, j = (nn % 16) / 8, r = nn % 8;
  return g * s.n_pad + (n / kUnitN) * kUnitN + r * 8 + sl * 2 + j;
}

// CPU reference: walks the checkpoint element by element and drops each field into its slot (the GPU repack
// does the inverse walk, one output word per thread, so the two share no index code path beyond repack_slot's
// definition of the layout).
//   packed: int32 [n, packed_row_words(k, bits)]; scales: [n, num_groups] 16-bit values (raw bits);
//   out_words: repacked_weight_words(s); out_scales: repacked_scale_count(s).
inline void repack_reference(const RepackShape& s, const int32_t* packed, const uint16_t* scales, uint32_t* out_words,
                             uint16_t* out_scales) {
  const int64_t total_words = repacked_weight_words(s);
  // q = 0 everywhere first: the padding.
  uint32_t zero_word = 0;
  for (int f = 0; f < 32 / s.bits; ++f) zero_word |= uint32_t(pack_offset(s.bits)) << (f * s.bits);
  for (int64_t i = 0; i < total_words; ++i) out_words[i] = zero_word;
  const int64_t row_words = packed_row_words(s.k, s.bits);
  const uint32_t mask = pack_field_mask(s.bits);
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t k = 0; k < s.k; ++k) {
      const uint32_t w = uint32_t(packed[n * row_words + pack_word_index(k, s.bits)]);
      const uint32_t field = (w >> pack_bit_offset(k, s.bits)) & mask;
      const RepackSlot slot = repack_slot(s, n, k);
      out_words[slot.word] = (out_words[slot.word] & ~(mask << slot.bit)) | (field << slot.bit);
    }
  }
  for (int64_t i = 0; i < repacked_scale_count(s); ++i) out_scales[i] = 0;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < s.num_groups; ++g) out_scales[repack_scale_index(s, g, n)] = scales[n * s.num_groups + g];
}

// Inverse of repack_reference for the logical region: the signed q of element (n, k).
inline int32_t repacked_q(const RepackShape& s, const uint32_t* words, int64_t n, int64_t k) {
  const RepackSlot slot = repack_slot(s, n, k);
  return pack_signed_value(words[slot.word] >> slot.bit, s.bits);
}

}  // namespace rtnq::cuda
