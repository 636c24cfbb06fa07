// GoogleTest driver of the GPU GEMM checks in gemm-checks.h (labelled `gpu`; skips where no GPU exists).
#include <gtest/gtest.h>

#include "gemm-checks.h"

namespace rtnq::cuda::checks {
namespace {

class CudaGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gpu_available()) GTEST_SKIP() << "no CUDA device: GPU GEMM checks skipped";
    std::string err;
    ASSERT_TRUE(ctx_.init(&err)) << err;
  }
  Context ctx_;
};

TEST_F(CudaGemm, GpuRepackEqualsCpuReference) {
  for (const RepackCase& c : repack_cases()) {
    for (DType act : {DType::kF16, DType::kBF16}) {
      const CheckResult r = check_repack(ctx_, c.n, c.k, c.bits, c.group, act);
      EXPECT_TRUE(r.ok) << r.detail;
    }
  }
}

TEST_F(CudaGemm, MatchesReferenceOverShapeTable) {
  for (const GemmCase& g : gemm_cases()) {
    const CheckResult r = check_gemm(ctx_, g);
    EXPECT_TRUE(r.ok) << r.detail;
  }
}

TEST_F(CudaGemm, RejectsBadArguments) {
  const CheckResult r = check_rejections(ctx_);
  EXPECT_TRUE(r.ok) << r.detail;
}

}  // namespace
}  // namespace rtnq::cuda::checks
