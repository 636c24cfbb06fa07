// Instances of the strip kernel (m <= 8, one 64-column strip per block), both dtypes.
#include "cuda/gemm-strip-kernel.cuh"

namespace rtnq::cuda::detail {
RTNQ_STRIP_INSTANCES_FOR(, half)
RTNQ_STRIP_INSTANCES_FOR(, __nv_bfloat16)
}  // namespace rtnq::cuda::detail
