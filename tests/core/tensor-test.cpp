#include "rtnq/tensor.h"

#include <random>

#include <gtest/gtest.h>

namespace rtnq {
namespace {

TEST(Tensor, ToDtypeConvertsExactlyAndIsZeroCopyWhenSame) {
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 2.f);
  float* src = nullptr;
  TensorView f32 = make_owned_f32("w", {3, 37}, &src);
  for (int64_t i = 0; i < f32.numel(); ++i) src[i] = nd(rng);
  EXPECT_EQ(to_dtype(f32, DType::kF32).data, f32.data);
  for (DType t : {DType::kBF16, DType::kF16}) {
    TensorView c = to_dtype(f32, t);
    ASSERT_EQ(c.info.dtype, t);
    ASSERT_EQ(c.info.shape, f32.info.shape);
    EXPECT_EQ(to_dtype(c, t).data, c.data);
    TensorView back = to_f32(c);
    for (int64_t i = 0; i < f32.numel(); ++i)
      ASSERT_EQ(back.as<float>()[i], round_to_dtype(src[i], t)) << "seed " << seed << " i " << i;
    // Converting between the two 16-bit types goes through fp32 and rounds once into the target.
    const DType other = t == DType::kBF16 ? DType::kF16 : DType::kBF16;
    TensorView o = to_f32(to_dtype(c, other));
    for (int64_t i = 0; i < f32.numel(); ++i)
      ASSERT_EQ(o.as<float>()[i], round_to_dtype(round_to_dtype(src[i], t), other)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace rtnq
