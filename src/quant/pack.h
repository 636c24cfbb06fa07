// Packing signed RTN integers into checkpoint layout (compressed-tensors pack-quantized) and back.
// The layout itself is defined once, in pack-layout.h.
#pragma once

#include <cstdint>

#include "quant/pack-layout.h"
#include "rtnq/dtype.h"
#include "rtnq/quant.h"

namespace rtnq {

// q: int8 [rows, cols], each in [q_min(bits), q_max(bits)]; packed: int32 [rows, packed_row_words(cols, bits)].
void pack_int32(const int8_t* q, int64_t rows, int64_t cols, int bits, int32_t* packed);
// Inverse of pack_int32 (padding fields dropped).
void unpack_int32(const int32_t* packed, int64_t rows, int64_t cols, int bits, int8_t* q);
// fp32 [rows, cols] = q * scale, scales [rows, cols/group] in scale_dtype (raw bytes), group kPerChannel ok.
void dequantize_rows(const int32_t* packed, const void* scales, DType scale_dtype, int64_t rows, int64_t cols,
                     int bits, int64_t group_size, float* out);

}  // namespace rtnq
