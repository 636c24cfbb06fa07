// CPU tests of the GPU weight layout (src/cuda/repack-layout.h): the reference repack is a lossless, bijective
// re-arrangement of the checkpoint integers, its padding is q = 0, and a few slots match the hand-derived
// mma.m16n8k16 fragment positions. Runs without a GPU (the GPU repack is compared against it in tests/cuda).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "cuda/repack-layout.h"
#include "quant/pack-layout.h"

namespace rtnq::cuda {
namespace {

struct Packed {
  std::vector<int32_t> words;
  std::vector<int8_t> q;
  std::vector<uint16_t> scales;
};

Packed random_packed(int64_t n, int64_t k, int bits, int64_t groups, std::mt19937_64& rng) {
  Packed p;
  const int64_t row_words = packed_row_words(k, bits);
  p.words.assign(size_t(n * row_words), 0);
  p.q.resize(size_t(n * k));
  std::uniform_int_distribution<int> qd(q_min(bits), q_max(bits));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int q = qd(rng);
      p.q[size_t(i * k + j)] = int8_t(q);
      p.words[size_t(i * row_words + pack_word_index(j, bits))] |= int32_t(pack_stored_value(q, bits) << pack_bit_offset(j, bits));
    }
  std::uniform_int_distribution<int> sd(1, 0xffff);
  p.scales.resize(size_t(n * groups));
  for (auto& s : p.scales) s = uint16_t(sd(rng));
  return p;
}

TEST(RepackLayout, HandDerivedSlots) {
  const RepackShape s = make_repack_shape(128, 128, 4, 128);
  // INT4, unit (strip 0, k16 0): lane = 4 * (n % 8) + (k % 8) / 2; nibble = 2 j + kh + 4 hi; word = slice.
  EXPECT_EQ(repack_slot(s, 0, 0).word, 0);
  EXPECT_EQ(repack_slot(s, 0, 0).bit, 0);
  EXPECT_EQ(repack_slot(s, 0, 1).bit, 16);  // odd k: high half of the register
  EXPECT_EQ(repack_slot(s, 0, 8).bit, 4);   // k + 8: second register of the pair
  EXPECT_EQ(repack_slot(s, 8, 0).bit, 8);   // n + 8: second n8 tile
  EXPECT_EQ(repack_slot(s, 1, 0).word, 4 * 4);  // n + 1: lane 4, 4 words per lane
  EXPECT_EQ(repack_slot(s, 0, 2).word, 1 * 4);  // k + 2: lane 1
  EXPECT_EQ(repack_slot(s, 16, 0).word, 1);     // next 16-column slice: next word of the lane
  EXPECT_EQ(repack_slot(s, 0, 16).word, 32 * 4);  // next unit along k
  EXPECT_EQ(repack_slot(s, 64, 0).word, (128 / 16) * 32 * 4);  // next strip after all k units
  const RepackShape s8 = make_repack_shape(128, 128, 8, 128);
  EXPECT_EQ(repack_slot(s8, 8, 0).word, 1);   // INT8: tile j picks the word
  EXPECT_EQ(repack_slot(s8, 0, 8).bit, 16);   // second register: bytes 2..3
  EXPECT_EQ(repack_slot(s8, 0, 9).bit, 24);
  EXPECT_EQ(repack_slot(s8, 16, 0).word, 2);  // slice 1: words 2..3
  EXPECT_EQ(repack_scale_index(s, 0, 8), 1);  // (r 0, slice 0, j 1)
  EXPECT_EQ(repack_scale_index(s, 0, 16), 2);
  EXPECT_EQ(repack_scale_index(s, 0, 1), 8);
  EXPECT_EQ(repack_scale_index(s, 1, 65), 128 + 64 + 8);
}

TEST(RepackLayout, ShapesPadAndGroup) {
  const RepackShape a = make_repack_shape(576, 576, 4, 128);
  EXPECT_EQ(a.k_pad, 640);
  EXPECT_EQ(a.n_pad, 640);
  EXPECT_EQ(a.num_groups, 5);  // 4.5 groups round up, as compressed-tensors stores them
  const RepackShape pc = make_repack_shape(300, 200, 8, -1);
  EXPECT_EQ(pc.num_groups, 1);
  EXPECT_GE(pc.group, pc.k_pad);
}

TEST(RepackLayout, ReferenceIsLosslessAndBijective) {
  std::random_device rd;
  const uint64_t seed = (uint64_t(rd()) << 32) | rd();
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::uniform_int_distribution<int64_t> nd(1, 300), kd(1, 40);
  for (int bits : {4, 8}) {
    for (int trial = 0; trial < 6; ++trial) {
      const int64_t n = nd(rng), k = 8 * kd(rng);
      const int64_t group = trial % 3 == 0 ? -1 : (trial % 3 == 1 ? 64 : 32);
      const RepackShape s = make_repack_shape(n, k, bits, group);
      const Packed p = random_packed(n, k, bits, s.num_groups, rng);
      std::vector<uint32_t> words(size_t(repacked_weight_words(s)));
      std::vector<uint16_t> scales(size_t(repacked_scale_count(s)));
      repack_reference(s, p.words.data(), p.scales.data(), words.data(), scales.data());
      // Every padded-or-logical slot is hit exactly once.
      std::vector<uint8_t> hits(words.size() * (32 / bits), 0);
      for (int64_t i = 0; i < s.n_pad; ++i)
        for (int64_t j = 0; j < s.k_pad; ++j) {
          const RepackSlot slot = repack_slot(s, i, j);
          ASSERT_LT(slot.word, int64_t(words.size()));
          ++hits[size_t(slot.word * (32 / bits) + slot.bit / bits)];
          const int32_t want = (i < n && j < k) ? p.q[size_t(i * k + j)] : 0;
          ASSERT_EQ(repacked_q(s, words.data(), i, j), want) << "n=" << i << " k=" << j << " bits=" << bits;
        }
      for (uint8_t h : hits) ASSERT_EQ(h, 1);
      std::vector<uint8_t> scale_hits(scales.size(), 0);
      for (int64_t g = 0; g < s.num_groups; ++g)
        for (int64_t i = 0; i < s.n_pad; ++i) {
          const int64_t idx = repack_scale_index(s, g, i);
          ++scale_hits[size_t(idx)];
          ASSERT_EQ(scales[size_t(idx)], i < n ? p.scales[size_t(i * s.num_groups + g)] : 0);
        }
      for (uint8_t h : scale_hits) ASSERT_EQ(h, 1);
    }
  }
}

}  // namespace
}  // namespace rtnq::cuda
