// Instances of the wide kernel with 64-token tiles (gemm_quant's auto choice at 41-64 tokens where
// wide_small_tiles_pay), both dtypes; apart from the 128-token ones (gemm-wide.cu) so the two compile in parallel.
#include "cuda/gemm-wide-kernel.cuh"

namespace rtnq::cuda::detail {
RTNQ_WIDE_INSTANCES_FOR(, half, kWideTokensSmall)
RTNQ_WIDE_INSTANCES_FOR(, __nv_bfloat16, kWideTokensSmall)
}  // namespace rtnq::cuda::detail
