// Instances of the wide kernel (compute-bound m, warp-specialized) with 128-token tiles, both dtypes, and its
// tensor maps. (The 64-token tiles compile apart, in gemm-wide-small.cu, in parallel with these.)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include "cuda/gemm-wide-kernel.cuh"

namespace rtnq::cuda::detail {

namespace {
// The driver's tensor-map encoder, through the runtime (no link against libcuda); nullptr if unavailable.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      f = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}
}  // namespace

cudaError_t make_wide_act_map(const void* a, int64_t m, int64_t k, bool bf16, int box_rows, CUtensorMap* map) {
  const auto encode = tensor_map_encoder();
  if (encode == nullptr) return cudaErrorNotSupported;
  const cuuint64_t dims[2] = {cuuint64_t(k), cuuint64_t(m)};
  const cuuint64_t strides[1] = {cuuint64_t(k) * 2};  // bytes between rows (a multiple of 16: k % 8 == 0)
  const cuuint32_t box[2] = {cuuint32_t(kWideK), cuuint32_t(box_rows)};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encode(map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
                            const_cast<void*>(a), dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t make_wide_weight_map(const void* w, int64_t strip_bytes, int64_t strips, int chunks, CUtensorMap* map) {
  const auto encode = tensor_map_encoder();
  if (encode == nullptr) return cudaErrorNotSupported;
  const cuuint64_t dims[3] = {cuuint64_t(kWideChunkBytes / 8), cuuint64_t(strip_bytes / kWideChunkBytes), cuuint64_t(strips)};
  const cuuint64_t strides[2] = {cuuint64_t(kWideChunkBytes), cuuint64_t(strip_bytes)};
  const cuuint32_t box[3] = {cuuint32_t(kWideChunkBytes / 8), cuuint32_t(chunks), cuuint32_t(kWideStrips)};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT64, 3, const_cast<void*>(w), dims, strides, box, elem_strides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

RTNQ_WIDE_INSTANCES_FOR(, half, kWideTokensBig)
RTNQ_WIDE_INSTANCES_FOR(, __nv_bfloat16, kWideTokensBig)

}  // namespace rtnq::cuda::detail
