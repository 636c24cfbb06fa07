#include "rtnq/dtype.h"

#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

namespace rtnq {
namespace {

TEST(DType, NamesRoundTrip) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kI8, DType::kI32, DType::kI64, DType::kU8}) {
    auto back = dtype_from_name(dtype_name(t));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, t);
  }
  EXPECT_FALSE(dtype_from_name("F8_E4M3").has_value());
  EXPECT_EQ(dtype_from_torch_name("torch.bfloat16"), DType::kBF16);
}

TEST(DType, F16EveryBitPatternRoundTrips) {
  // f16 -> f32 is exact, so f32 -> f16 must give back the same bits for every non-NaN pattern.
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "pattern " << h;
  }
}

TEST(DType, F16RoundsHalfToEven) {
  // 1 + 2^-11 lies exactly between 1 and the next f16 (1 + 2^-10): ties go to the even mantissa (1).
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3*2^-11 lies between 1+2^-10 (odd) and 1+2^-9 (even): goes up.
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(70000.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);   // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);   // tie to even -> 0
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);   // 1.5 units -> 2
}

TEST(DType, Bf16RoundsHalfToEvenAndMatchesBulk) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  std::mt19937 rng(1234);
  std::vector<uint16_t> b(1003), h(1003);
  std::vector<float> src(1003), out(1003);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (auto& x : src) x = nd(rng);
  convert_from_f32(src.data(), DType::kBF16, b.data(), b.size());
  convert_from_f32(src.data(), DType::kF16, h.data(), h.size());
  convert_to_f32(b.data(), DType::kBF16, out.data(), out.size());
  for (size_t i = 0; i < src.size(); ++i) EXPECT_EQ(out[i], round_to_dtype(src[i], DType::kBF16));
  convert_to_f32(h.data(), DType::kF16, out.data(), out.size());
  for (size_t i = 0; i < src.size(); ++i) EXPECT_EQ(out[i], round_to_dtype(src[i], DType::kF16));
}

}  // namespace
}  // namespace rtnq
