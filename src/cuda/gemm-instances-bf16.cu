// BF16 instances of the fused kernel (kept apart from FP16 so the two compile in parallel).
#include "cuda/gemm-kernel.cuh"

namespace rtnq::cuda::detail {
RTNQ_GEMM_INSTANCES_FOR(, __nv_bfloat16)
}  // namespace rtnq::cuda::detail
