// ggml block dequantization. Each type gets a hand-built block whose expected values are worked
// out here from the format's description (element by element, not by the loops of the
// implementation), a few literal values computed by hand, and random blocks that must stay finite.
#include "io/gguf-dequant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "rtnq/dtype.h"

namespace rtnq {
namespace {

// Exact IEEE half bit patterns used as scales.
constexpr uint16_t kHalfOne = 0x3C00, kHalfHalf = 0x3800, kHalfTwo = 0x4000, kHalfQuarter = 0x3400,
                   kHalfMinusOne = 0xBC00, kHalfThree = 0x4200;

void put16(std::vector<uint8_t>& b, size_t pos, uint16_t v) {
  b[pos] = uint8_t(v & 0xff);
  b[pos + 1] = uint8_t(v >> 8);
}

std::vector<float> dequant(GgmlType t, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> y(size_t(n), -12345.0f);
  Status st = dequantize_ggml(t, bytes, n, y.data(), "test.weight");
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return y;
}

TEST(GgufDequant, F32F16BF16) {
  const std::vector<float> f = {1.5f, -0.0f, 3.25e-7f};
  std::vector<uint8_t> fb(12);
  std::memcpy(fb.data(), f.data(), 12);
  EXPECT_EQ(dequant(GgmlType::kF32, fb, 3), f);

  // 1.0, -2.0, 65504 (max half), 2^-24 (smallest subnormal), 0x3555 = 1 + 341/1024 scaled by 2^-2.
  std::vector<uint8_t> hb(10);
  const uint16_t h[5] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3555};
  for (int k = 0; k < 5; ++k) put16(hb, 2 * k, h[k]);
  const auto hy = dequant(GgmlType::kF16, hb, 5);
  EXPECT_EQ(hy[0], 1.0f);
  EXPECT_EQ(hy[1], -2.0f);
  EXPECT_EQ(hy[2], 65504.0f);
  EXPECT_EQ(hy[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(hy[4], 0.25f * (1.0f + 341.0f / 1024.0f));

  // bf16 is the top half of an f32: 0x3F80 = 1, 0xC040 = -3, 0x4049 = 3.140625.
  std::vector<uint8_t> bb(6);
  put16(bb, 0, 0x3F80);
  put16(bb, 2, 0xC040);
  put16(bb, 4, 0x4049);
  EXPECT_EQ(dequant(GgmlType::kBF16, bb, 3), (std::vector<float>{1.0f, -3.0f, 3.140625f}));
}

TEST(GgufDequant, Q8_0) {
  // d = 0.25, q = -128, -127, ..., then 96..127 for the second block; value = 0.25 * q.
  std::vector<uint8_t> b(2 * 34);
  put16(b, 0, kHalfQuarter);
  put16(b, 34, kHalfMinusOne);
  for (int j = 0; j < 32; ++j) {
    b[2 + j] = uint8_t(int8_t(-128 + j));
    b[36 + j] = uint8_t(int8_t(96 + j));
  }
  const auto y = dequant(GgmlType::kQ8_0, b, 64);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(y[j], 0.25f * float(-128 + j)) << j;
    EXPECT_EQ(y[32 + j], -1.0f * float(96 + j)) << j;
  }
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[63], -127.0f);
}

TEST(GgufDequant, Q4_0) {
  // d = 0.5; byte j holds weight j in its low nibble and weight j + 16 in its high nibble.
  // Low nibble = j, high nibble = 15 - j: weight j = (j - 8) / 2, weight j + 16 = (7 - j) / 2.
  std::vector<uint8_t> b(18);
  put16(b, 0, kHalfHalf);
  for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(GgmlType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * float(j - 8)) << j;
    EXPECT_EQ(y[16 + j], 0.5f * float(7 - j)) << j;
  }
  EXPECT_EQ(y[0], -4.0f);    // nibble 0 -> (0 - 8) * 0.5
  EXPECT_EQ(y[16], 3.5f);    // nibble 15 -> (15 - 8) * 0.5
  EXPECT_EQ(y[31], -4.0f);   // byte 15's high nibble is 0
}

TEST(GgufDequant, Q4_1) {
  // d = 2, m = -1: weight = 2 * nibble - 1.  Byte j = (j + 1) & 15 | (j << 4).
  std::vector<uint8_t> b(20);
  put16(b, 0, kHalfTwo);
  put16(b, 2, kHalfMinusOne);
  for (int j = 0; j < 16; ++j) b[4 + j] = uint8_t(((j + 1) & 15) | (j << 4));
  const auto y = dequant(GgmlType::kQ4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * float((j + 1) & 15) - 1.0f) << j;
    EXPECT_EQ(y[16 + j], 2.0f * float(j) - 1.0f) << j;
  }
  EXPECT_EQ(y[15], -1.0f);  // (15 + 1) & 15 = 0
  EXPECT_EQ(y[31], 29.0f);  // 2 * 15 - 1
}

TEST(GgufDequant, Q5_0) {
  // d = 3. qh (little-endian u32) = 0x8001'0003: bits 0, 1 (weights 0, 1) and bits 16, 31
  // (weights 16, 31) carry a 5th bit worth 16. Nibbles: low = j, high = 15 - j. Value = (q - 16) * 3.
  std::vector<uint8_t> b(22);
  put16(b, 0, kHalfThree);
  b[2] = 0x03; b[3] = 0x00; b[4] = 0x01; b[5] = 0x80;
  for (int j = 0; j < 16; ++j) b[6 + j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(GgmlType::kQ5_0, b, 32);
  auto high = [](int w) { return w == 0 || w == 1 || w == 16 || w == 31 ? 16 : 0; };
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 3.0f * float(j + high(j) - 16)) << j;
    EXPECT_EQ(y[16 + j], 3.0f * float(15 - j + high(16 + j) - 16)) << j;
  }
  EXPECT_EQ(y[0], 0.0f);     // (0 + 16 - 16) * 3
  EXPECT_EQ(y[2], -42.0f);   // (2 - 16) * 3
  EXPECT_EQ(y[16], 45.0f);   // (15 + 16 - 16) * 3
  EXPECT_EQ(y[31], 0.0f);    // byte 15's high nibble is 0, bit 31 set: (0 + 16 - 16) * 3
}

TEST(GgufDequant, Q5_1) {
  // d = 0.5, m = 1. qh = 0xFFFF'0000: weights 16..31 have the 5th bit. Value = q * 0.5 + 1.
  std::vector<uint8_t> b(24);
  put16(b, 0, kHalfHalf);
  put16(b, 2, kHalfOne);
  b[4] = 0x00; b[5] = 0x00; b[6] = 0xFF; b[7] = 0xFF;
  for (int j = 0; j < 16; ++j) b[8 + j] = uint8_t(((j * 7) & 15) | (((j * 3) & 15) << 4));
  const auto y = dequant(GgmlType::kQ5_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * float((j * 7) & 15) + 1.0f) << j;
    EXPECT_EQ(y[16 + j], 0.5f * float(((j * 3) & 15) + 16) + 1.0f) << j;
  }
  EXPECT_EQ(y[16], 9.0f);  // (0 + 16) * 0.5 + 1
  EXPECT_EQ(y[1], 4.5f);   // 7 * 0.5 + 1
}

// The 12 scale bytes used by the Q4_K and Q5_K cases, decoded by hand:
//   bytes 0-3 = 0x43 0x05 0x87 0x01: scales 0-3 = 3, 5, 7, 1; their top bits (1, 0, 2, 0) are the
//              top 2 bits of scales 4-7.
//   bytes 4-7 = 0x02 0x40 0x04 0xC3: mins 0-3 = 2, 0, 4, 3; top bits (0, 1, 0, 3) go to mins 4-7.
//   bytes 8-11 = 0x21 0x3F 0x00 0x15: low nibble = scale 4-7 low bits (1, 15, 0, 5),
//              high nibble = min 4-7 low bits (2, 3, 0, 1).
//   So scales = 3, 5, 7, 1, 1+16, 15+0, 0+32, 5+0 and mins = 2, 0, 4, 3, 2+0, 3+16, 0+0, 1+48.
constexpr uint8_t kKScales[12] = {0x43, 0x05, 0x87, 0x01, 0x02, 0x40, 0x04, 0xC3, 0x21, 0x3F, 0x00, 0x15};
constexpr int kKScale[8] = {3, 5, 7, 1, 17, 15, 32, 5};
constexpr int kKMin[8] = {2, 0, 4, 3, 2, 19, 0, 49};

TEST(GgufDequant, Q4_K) {
  // d = 1, dmin = 0.5. Weight w (0..255) is in sub-block s = w / 32; its nibble is in byte
  // 32 * (s / 2) + w % 32 of qs, low nibble for even s, high for odd. value = d*sc[s]*q - dmin*m[s].
  std::vector<uint8_t> b(144);
  put16(b, 0, kHalfOne);
  put16(b, 2, kHalfHalf);
  std::memcpy(&b[4], kKScales, 12);
  uint8_t qs[128];
  for (int k = 0; k < 128; ++k) qs[k] = uint8_t((k & 15) | (((k >> 1) & 15) << 4));
  std::memcpy(&b[16], qs, 128);
  const auto y = dequant(GgmlType::kQ4_K, b, 256);
  for (int w = 0; w < 256; ++w) {
    const int s = w / 32;
    const uint8_t byte = qs[32 * (s / 2) + w % 32];
    const int q = s % 2 == 0 ? byte & 15 : byte >> 4;
    EXPECT_EQ(y[w], 1.0f * float(kKScale[s]) * float(q) - 0.5f * float(kKMin[s])) << w;
  }
  EXPECT_EQ(y[0], -1.0f);           // 3 * 0 - 0.5 * 2
  EXPECT_EQ(y[33], 0.0f);           // sub-block 1: byte 1 = 0x01 -> high nibble 0; 5 * 0 - 0
  // Sub-block 5, weight 3: byte 64 + 3 = 67 -> 3 | (33 & 15) << 4 = 0x13 -> high nibble 1;
  // 15 * 1 - 0.5 * 19 = 5.5.
  EXPECT_EQ(y[5 * 32 + 3], 5.5f);
}

TEST(GgufDequant, Q5_K) {
  // As Q4_K plus qh: weight w in sub-block s takes bit s of qh[w % 32] as its 5th bit (value 16).
  std::vector<uint8_t> b(176);
  put16(b, 0, kHalfHalf);
  put16(b, 2, kHalfTwo);
  std::memcpy(&b[4], kKScales, 12);
  uint8_t qh[32], qs[128];
  for (int l = 0; l < 32; ++l) qh[l] = uint8_t(l * 37 + 11);
  for (int k = 0; k < 128; ++k) qs[k] = uint8_t((k * 5) & 255);
  std::memcpy(&b[16], qh, 32);
  std::memcpy(&b[48], qs, 128);
  const auto y = dequant(GgmlType::kQ5_K, b, 256);
  for (int w = 0; w < 256; ++w) {
    const int s = w / 32, l = w % 32;
    const uint8_t byte = qs[32 * (s / 2) + l];
    const int q = (s % 2 == 0 ? byte & 15 : byte >> 4) + ((qh[l] >> s) & 1) * 16;
    EXPECT_EQ(y[w], 0.5f * float(kKScale[s]) * float(q) - 2.0f * float(kKMin[s])) << w;
  }
  // Weight 0: qs[0] = 0 -> nibble 0; qh[0] = 11 = 0b1011 -> bit 0 set -> q = 16; 0.5*3*16 - 2*2 = 20.
  EXPECT_EQ(y[0], 20.0f);
  // Weight 32 (sub-block 1, l = 0): high nibble of qs[0] = 0; bit 1 of 11 set -> q = 16;
  // 0.5*5*16 - 2*0 = 40.
  EXPECT_EQ(y[32], 40.0f);
  // Weight 64 (sub-block 2, l = 0): qs[32] = 160 = 0xA0 -> low nibble 0; bit 2 of 11 clear -> q = 0;
  // 0 - 2*4 = -8.
  EXPECT_EQ(y[64], -8.0f);
}

TEST(GgufDequant, Q6_K) {
  // d = 0.25, int8 scales 1, -2, 3, ... (sign alternating). Weight w: half h = w / 128, r = w % 128,
  // group g = r / 32, l = r % 32. Low 4 bits: group 0 -> low nibble of ql[64h + l], 1 -> low nibble
  // of ql[64h + 32 + l], 2 -> high nibble of ql[64h + l], 3 -> high nibble of ql[64h + 32 + l].
  // High 2 bits: bits 2g, 2g+1 of qh[32h + l]. Scale: scales[8h + 2g + l / 16]. value = d*sc*(q-32).
  std::vector<uint8_t> b(210);
  uint8_t ql[128], qh[64];
  int8_t sc[16];
  for (int k = 0; k < 128; ++k) ql[k] = uint8_t(k * 29 + 3);
  for (int k = 0; k < 64; ++k) qh[k] = uint8_t(k * 53 + 7);
  for (int k = 0; k < 16; ++k) sc[k] = int8_t((k % 2 == 0 ? 1 : -1) * (k + 1));
  std::memcpy(&b[0], ql, 128);
  std::memcpy(&b[128], qh, 64);
  std::memcpy(&b[192], sc, 16);
  put16(b, 208, kHalfQuarter);
  const auto y = dequant(GgmlType::kQ6_K, b, 256);
  for (int w = 0; w < 256; ++w) {
    const int h = w / 128, r = w % 128, g = r / 32, l = r % 32;
    const uint8_t lo_byte = ql[64 * h + (g % 2) * 32 + l];
    const int lo = g < 2 ? lo_byte & 15 : lo_byte >> 4;
    const int hi = (qh[32 * h + l] >> (2 * g)) & 3;
    const int q = lo | (hi << 4);
    EXPECT_EQ(y[w], 0.25f * float(sc[8 * h + 2 * g + l / 16]) * float(q - 32)) << w;
  }
  // Weight 0: ql[0] = 3 -> low 3; qh[0] = 7 -> bits 0-1 = 3 -> q = 3 | 48 = 51; 0.25 * 1 * 19.
  EXPECT_EQ(y[0], 4.75f);
  // Weight 96 (g = 3, l = 0): ql[32] = 32*29+3 = 931 & 255 = 163 = 0xA3 -> high nibble 10;
  // qh[0] = 7 -> bits 6-7 = 0 -> q = 10; scale sc[6] = 7 -> 0.25 * 7 * (10 - 32) = -38.5.
  EXPECT_EQ(y[96], -38.5f);
}

// Random blocks with finite half scales: no NaN or Inf may come out.
TEST(GgufDequant, RandomBlocksStayFinite) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  auto finite_half = [&]() {
    uint16_t h;
    do h = uint16_t(rng()); while (((h >> 10) & 31) == 31);  // exponent 31 is Inf/NaN
    return h;
  };
  struct Case { GgmlType t; std::vector<size_t> half_fields; };
  const Case cases[] = {
      {GgmlType::kQ4_0, {0}}, {GgmlType::kQ4_1, {0, 2}}, {GgmlType::kQ5_0, {0}}, {GgmlType::kQ5_1, {0, 2}},
      {GgmlType::kQ8_0, {0}}, {GgmlType::kQ4_K, {0, 2}}, {GgmlType::kQ5_K, {0, 2}}, {GgmlType::kQ6_K, {208}},
      {GgmlType::kF16, {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(ggml_type_name(c.t));
    const auto tr = *ggml_type_traits(c.t);
    const int64_t nb = 1 + rng() % 16;
    std::vector<uint8_t> b(size_t(nb * tr.type_size));
    for (auto& x : b) x = uint8_t(rng());
    for (int64_t i = 0; i < nb; ++i) {
      for (size_t off : c.half_fields) put16(b, size_t(i * tr.type_size) + off, finite_half());
      if (c.t == GgmlType::kF16)
        for (int64_t k = 0; k < tr.type_size; k += 2) put16(b, size_t(i * tr.type_size + k), finite_half());
    }
    const auto y = dequant(c.t, b, nb * tr.block_size);
    for (size_t k = 0; k < y.size(); ++k) ASSERT_TRUE(std::isfinite(y[k])) << "element " << k;
  }
}

TEST(GgufDequant, WrongSizesAndTypesAreRefused) {
  std::vector<float> y(512);
  std::vector<uint8_t> b(144 + 1);
  Status st = dequantize_ggml(GgmlType::kQ4_K, b, 256, y.data(), "blk.0.attn_q.weight");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("blk.0.attn_q.weight"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("Q4_K"), std::string::npos) << st.message();
  b.resize(143);
  EXPECT_EQ(dequantize_ggml(GgmlType::kQ4_K, b, 256, y.data()).code(), StatusCode::kInvalidArgument);
  b.resize(34);
  EXPECT_EQ(dequantize_ggml(GgmlType::kQ8_0, b, 31, y.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dequantize_ggml(GgmlType::kQ8_0, b, 64, y.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dequantize_ggml(GgmlType::kQ8_0, b, 32, y.data()).code(), StatusCode::kOk);
  b.resize(84);
  st = dequantize_ggml(GgmlType::kQ2_K, b, 256, y.data(), "blk.3.ffn_up.weight");
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("Q2_K"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("blk.3.ffn_up.weight"), std::string::npos) << st.message();
  EXPECT_EQ(dequantize_ggml(GgmlType::kIQ4_XS, b, 256, y.data()).code(), StatusCode::kUnsupported);
  EXPECT_FALSE(ggml_can_dequantize(GgmlType::kQ3_K));
  EXPECT_TRUE(ggml_can_dequantize(GgmlType::kQ6_K));
}

}  // namespace
}  // namespace rtnq
