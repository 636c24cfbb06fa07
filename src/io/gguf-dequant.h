// ggml block formats -> fp32. The block structs below are the byte layouts of ggml-common.h (one
// place, checked by static_assert); the dequantizers are plain scalar reference code, the oracle
// for any faster path.
//
// Legacy formats hold 32 weights per block: Q4_0 / Q5_0 / Q8_0 are d * q with q centred by a fixed
// offset (8, 16, 0); Q4_1 / Q5_1 are d * q + m. k-quants hold 256 weights per super-block made of
// sub-blocks with their own 6-bit (Q4_K, Q5_K) or 8-bit (Q6_K) scales.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "io/gguf.h"
#include "rtnq/status.h"

namespace rtnq::ggml {

inline constexpr int kQK = 32;    // legacy block
inline constexpr int kQK_K = 256; // k-quant super-block

// `uint16_t` fields hold IEEE half floats.
struct BlockQ4_0 { uint16_t d; uint8_t qs[kQK / 2]; };                       // low nibbles: 0..15, high: 16..31
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[kQK / 2]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[kQK / 2]; };        // qh: bit j = 5th bit of weight j
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[kQK / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[kQK]; };
// 8 sub-blocks of 32: scales[12] packs eight 6-bit scales and eight 6-bit mins (see get_scale_min).
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[kQK_K / 2]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[kQK_K / 8]; uint8_t qs[kQK_K / 2]; };
// 16 sub-blocks of 16 with signed 8-bit scales; 6-bit weights = 4 low bits in ql, 2 high bits in qh.
struct BlockQ6_K { uint8_t ql[kQK_K / 2]; uint8_t qh[kQK_K / 4]; int8_t scales[kQK_K / 16]; uint16_t d; };

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

}  // namespace rtnq::ggml

namespace rtnq {

// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K.
bool ggml_can_dequantize(GgmlType t);

// Dequantize `n` weights of type `t` into `dst`. `src` must be exactly the bytes n weights occupy
// and n a multiple of the block size; otherwise invalid_argument. Other types: unsupported. Errors
// name `tensor` and the type.
Status dequantize_ggml(GgmlType t, std::span<const uint8_t> src, int64_t n, float* dst,
                       std::string_view tensor = {});

}  // namespace rtnq
