// The ONE definition of the checkpoint packing: compressed-tensors `pack-quantized`, symmetric int.
//
//   weight_packed: int32 [rows, ceil(cols / pack_factor)], packed along the input (last) dimension.
//   Element j of a row lives in word j / pack_factor, at bit (j % pack_factor) * bits, low bits
//   first; the stored field is the unsigned value q + 2^(bits-1). A row whose length is not a
//   multiple of pack_factor is padded with zero fields (compressed-tensors pads the unsigned values
//   with 0, i.e. q = -2^(bits-1), and drops them again on unpack using weight_shape).
//
// Consequences worth knowing (little-endian, which is all we target): for INT8 the bytes of a packed
// row are exactly q ^ 0x80 in element order; for INT4 byte k of a row holds element 2k in its low
// nibble and element 2k+1 in its high nibble. Every other layout (CPU kernels, GPU repacks) is
// derived from these functions and tested against them.
#pragma once

#include <cstdint>

namespace rtnq {

// Weights per int32 word: 8 for INT4, 4 for INT8.
inline constexpr int pack_factor(int bits) { return 32 / bits; }
// int32 words per packed row (the last one zero-padded when cols % pack_factor != 0).
inline constexpr int64_t packed_row_words(int64_t cols, int bits) {
  return (cols + pack_factor(bits) - 1) / pack_factor(bits);
}
// Offset added to the signed q before storing: 8 for INT4, 128 for INT8.
inline constexpr int32_t pack_offset(int bits) { return int32_t{1} << (bits - 1); }
inline constexpr uint32_t pack_field_mask(int bits) { return (uint32_t{1} << bits) - 1; }
// Signed range of q.
inline constexpr int32_t q_min(int bits) { return -pack_offset(bits); }
inline constexpr int32_t q_max(int bits) { return pack_offset(bits) - 1; }

// Field stored for a signed q, and q back from a field.
inline constexpr uint32_t pack_stored_value(int32_t q, int bits) {
  return uint32_t(q + pack_offset(bits)) & pack_field_mask(bits);
}
inline constexpr int32_t pack_signed_value(uint32_t field, int bits) {
  return int32_t(field & pack_field_mask(bits)) - pack_offset(bits);
}
// Where element j of a row goes.
inline constexpr int64_t pack_word_index(int64_t j, int bits) { return j / pack_factor(bits); }
inline constexpr int pack_bit_offset(int64_t j, int bits) { return int(j % pack_factor(bits)) * bits; }

static_assert(pack_factor(4) == 8 && pack_factor(8) == 4, "32-bit words hold 8 INT4 or 4 INT8 fields");
static_assert(packed_row_words(64, 4) == 8 && packed_row_words(65, 4) == 9 && packed_row_words(64, 8) == 16);
static_assert(pack_stored_value(-8, 4) == 0 && pack_stored_value(0, 4) == 8 && pack_stored_value(7, 4) == 15);
static_assert(pack_stored_value(-128, 8) == 0 && pack_stored_value(0, 8) == 128 && pack_stored_value(127, 8) == 255);
static_assert(pack_signed_value(pack_stored_value(-3, 4), 4) == -3 && pack_signed_value(pack_stored_value(-77, 8), 8) == -77);
static_assert(pack_word_index(9, 4) == 1 && pack_bit_offset(9, 4) == 4, "element 9 of an INT4 row: word 1, bits 4..7");
static_assert(pack_word_index(6, 8) == 1 && pack_bit_offset(6, 8) == 16, "element 6 of an INT8 row: word 1, bits 16..23");
static_assert(pack_bit_offset(7, 4) + 4 == 32 && pack_bit_offset(3, 8) + 8 == 32, "the last field fills the word");

}  // namespace rtnq
