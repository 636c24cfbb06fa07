// Checkpoint packing (compressed-tensors pack-quantized): layout, round trips, dequantization.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "quant/pack.h"

namespace rtnq {
namespace {

struct Seeded {
  uint32_t seed = std::random_device{}();
  std::mt19937_64 rng{seed};
  std::string trace() const { return "seed=" + std::to_string(seed); }
};

std::vector<int8_t> random_q(std::mt19937_64& rng, int64_t n, int bits) {
  std::uniform_int_distribution<int> d(q_min(bits), q_max(bits));
  std::vector<int8_t> q(static_cast<size_t>(n));
  for (auto& x : q) x = int8_t(d(rng));
  return q;
}

// The layout written out independently of pack-layout.h: a plain reading of compressed-tensors'
// pack_to_int32 (unsigned value q + 2^(b-1); word c / (32/b); shift (c % (32/b)) * b).
std::vector<int32_t> pack_by_hand(const std::vector<int8_t>& q, int64_t rows, int64_t cols, int bits) {
  const int64_t per_word = 32 / bits;
  const int64_t words = (cols + per_word - 1) / per_word;
  std::vector<uint32_t> out(size_t(rows * words), 0u);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t u = uint32_t(int(q[size_t(r * cols + c)]) + (1 << (bits - 1)));
      out[size_t(r * words + c / per_word)] |= u << ((c % per_word) * bits);
    }
  return std::vector<int32_t>(out.begin(), out.end());
}

TEST(Pack, MatchesTheLayoutAndRoundTrips) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  for (int bits : {4, 8})
    for (int64_t rows : {int64_t{1}, int64_t{3}, int64_t{17}})
      for (int64_t cols : {int64_t{8}, int64_t{32}, int64_t{96}, int64_t{100}, int64_t{13}, int64_t{576}, int64_t{1}}) {
        SCOPED_TRACE(fmt::format("bits={} rows={} cols={}", bits, rows, cols));
        const std::vector<int8_t> q = random_q(s.rng, rows * cols, bits);
        std::vector<int32_t> packed(size_t(rows * packed_row_words(cols, bits)), 0x5a5a5a5a);  // garbage: all must be written
        pack_int32(q.data(), rows, cols, bits, packed.data());
        ASSERT_EQ(packed, pack_by_hand(q, rows, cols, bits));
        std::vector<int8_t> back(q.size(), 99);
        unpack_int32(packed.data(), rows, cols, bits, back.data());
        ASSERT_EQ(back, q);
      }
}

TEST(Pack, PaddingFieldsAreZero) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  // 13 INT4 values: the second word holds 5 and 3 zero (unsigned) padding fields.
  const std::vector<int8_t> q = random_q(s.rng, 13, 4);
  std::vector<int32_t> packed(2, -1);
  pack_int32(q.data(), 1, 13, 4, packed.data());
  EXPECT_EQ(uint32_t(packed[1]) >> 20, 0u);
  // 6 INT8 values: the second word's top two bytes are padding.
  const std::vector<int8_t> q8 = random_q(s.rng, 6, 8);
  std::vector<int32_t> p8(2, -1);
  pack_int32(q8.data(), 1, 6, 8, p8.data());
  EXPECT_EQ(uint32_t(p8[1]) >> 16, 0u);
}

// Written out by hand: INT4 q = 7 -8 0 1 -1 2 -2 3 | -8 0 0 2 -2 2 0 7 stores q+8 =
// F 0 8 9 7 A 6 B | 0 8 8 A 6 A 8 F (elements 7..0 read high to low), element j at bits 4*(j%8) -> 0xB6A7980F, 0xF8A6A880.
// INT8 q = 127 -128 0 2 -2 100 0 64 stores FF 00 80 82 | 7E E4 80 C0 -> 0x828000FF, 0xC080E47E.
TEST(Pack, HandComputedWords) {
  const std::vector<int8_t> q4 = {7, -8, 0, 1, -1, 2, -2, 3, -8, 0, 0, 2, -2, 2, 0, 7};
  std::vector<int32_t> p4(2);
  pack_int32(q4.data(), 1, 16, 4, p4.data());
  EXPECT_EQ(p4, (std::vector<int32_t>{int32_t(0xB6A7980Fu), int32_t(0xF8A6A880u)}));
  const std::vector<int8_t> q8 = {127, -128, 0, 2, -2, 100, 0, 64};
  std::vector<int32_t> p8(2);
  pack_int32(q8.data(), 1, 8, 8, p8.data());
  EXPECT_EQ(p8, (std::vector<int32_t>{int32_t(0x828000FFu), int32_t(0xC080E47Eu)}));
}

TEST(Pack, DequantizeRowsIsQTimesScale) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  std::uniform_real_distribution<float> sd(1e-4f, 0.05f);
  for (DType scale_dtype : {DType::kF32, DType::kF16, DType::kBF16})
    for (int bits : {4, 8})
      for (int64_t group : {int64_t{32}, int64_t{128}, kPerChannel})
        for (int64_t cols : {int64_t{256}, int64_t{44}}) {
          if (group != kPerChannel && cols % group != 0) continue;
          const int64_t rows = 5;
          const int64_t n_groups = cols / effective_group(group, cols);
          const std::vector<int8_t> q = random_q(s.rng, rows * cols, bits);
          std::vector<int32_t> packed(size_t(rows * packed_row_words(cols, bits)));
          pack_int32(q.data(), rows, cols, bits, packed.data());
          std::vector<float> sf(static_cast<size_t>(rows * n_groups));
          std::vector<uint8_t> raw(sf.size() * dtype_size(scale_dtype));
          for (auto& x : sf) x = round_to_dtype(sd(s.rng), scale_dtype);
          convert_from_f32(sf.data(), scale_dtype, raw.data(), sf.size());
          std::vector<float> out(q.size());
          dequantize_rows(packed.data(), raw.data(), scale_dtype, rows, cols, bits, group, out.data());
          const int64_t g = effective_group(group, cols);
          for (int64_t i = 0; i < rows * cols; ++i)
            ASSERT_EQ(out[size_t(i)], float(q[size_t(i)]) * sf[size_t(i / g)])
                << "i=" << i << " scale=" << dtype_name(scale_dtype) << " bits=" << bits << " group=" << group;
        }
}

}  // namespace
}  // namespace rtnq
