// FP16 instances of the swapped-operand kernel (kept apart from the other dtype and kernels so they compile in
// parallel).
#include "cuda/gemm-swap-kernel.cuh"

namespace rtnq::cuda::detail {
RTNQ_SWAP_INSTANCES_FOR(, half)
}  // namespace rtnq::cuda::detail
