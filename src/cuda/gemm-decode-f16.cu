// F16 instances of the decode kernel (kept apart from the other dtype and the tiled kernel so they compile in
// parallel).
#include "cuda/gemm-decode-kernel.cuh"

namespace rtnq::cuda::detail {
RTNQ_DECODE_INSTANCES_FOR(, half)
}  // namespace rtnq::cuda::detail
