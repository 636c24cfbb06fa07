// FP16 instances of the fused kernel (kept apart from BF16 so the two compile in parallel).
#include "cuda/gemm-kernel.cuh"

namespace rtnq::cuda::detail {
RTNQ_GEMM_INSTANCES_FOR(, half)
}  // namespace rtnq::cuda::detail
