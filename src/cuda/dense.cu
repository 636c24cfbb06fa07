// The compute-bound side of the dual path: dequantize once into a scratch buffer, then cuBLAS; and the
// choice between that and the fused kernel.
#include <string>

#include "cuda/cuda-error.h"
#include "cuda/gemm.h"

namespace rtnq::cuda {

cudaError_t cublas_gemm_nt(const void* a, const void* b, void* c, int64_t m, int64_t n, int64_t k, DType act,
                           cublasHandle_t handle) {
  if (act != DType::kF16 && act != DType::kBF16)
    return detail::fail(cudaErrorNotSupported, "cublas_gemm_nt: dtype must be F16 or BF16");
  if (a == nullptr || b == nullptr || c == nullptr || handle == nullptr || m < 1 || n < 1 || k < 1 ||
      m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return detail::fail(cudaErrorInvalidValue, "cublas_gemm_nt: null pointer/handle or shape out of range");
  // Row-major C[m, n] = A[m, k] B[n, k]^T is column-major C^T[n, m] = B^T (as [k, n] col-major, transposed) A^T.
  const cudaDataType_t t = act == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  const float alpha = 1.f, beta = 0.f;
  const cublasStatus_t st = cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &alpha, b, t,
                                         int(k), a, t, int(k), &beta, c, t, int(n), CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return detail::fail(cudaErrorUnknown, "cublas_gemm_nt: cublasGemmEx failed with status " + std::to_string(int(st)));
  return detail::check_launch("cublas_gemm_nt");
}

cudaError_t gemm_dense(const void* a, const RepackedWeight& w, void* c, int64_t m, void* scratch,
                       cublasHandle_t handle, cudaStream_t stream) {
  if (cudaError_t e = dequantize_repacked(w, scratch, stream); e != cudaSuccess) return e;
  if (cudaError_t e = cublas_gemm_nt(a, scratch, c, m, w.shape.n, w.shape.k, w.act, handle); e != cudaSuccess)
    return e;
  detail::clear_error();
  return cudaSuccess;
}

int64_t default_dense_crossover_m(int64_t n, int64_t k, int bits) {
  // Measured by bench-gemm (docs/perf-notes.md, "Swapped-operand kernel"): the largest m of {16, 32, 64, 128,
  // 256} at which the fused INT4 kernel still beats cuBLAS BF16 on a dense copy. It grows with the weight count,
  // because the fused kernel's fixed cost (launch, ramp, split-k hand-off) is paid once per call while its
  // advantage (4x fewer weight bytes) scales with the weights:
  //   8B o (17M weights), qkv (25M), gate_up (117M), down (59M), 70B qkv (84M), o (67M): 64 (8B o was 32 until
  //   the kernel's word prefetch: at m = 64 13.7 vs 14.4 us since, 14.2-14.6 vs 14.1-14.4 before);
  //   70B gate_up (470M), down (235M): 128.  SmolLM2-sized linears (< 8M): 8, the 8-token tile's last m (H100,
  //   three readings at m = 8: qkv 3.2 vs 3.2-3.3 us, o 2.8 vs 3.2, gate_up 3.4-3.5 vs 3.9; all four win at m = 1
  //   and 4 by 12-40%; qkv and gate_up lose at 16), except those with a long k (>= 1536): 32. cuBLAS's time on
  //   these narrow products grows with k, not m (SmolLM2 down, k = 1536, n = 576: 4.6-4.7 us at every m up to
  //   64, against 3.2-3.3 at k = 576), and the fused kernel beat it at m = 16 (3.4-3.6 vs 4.7 us) and 32 (4.4-4.5
  //   vs 4.6-4.7) in six readings of six; at 64 it loses (6.0-6.3).
  //   Above 64 tokens the fused path is the wide kernel (from 41 on most weights: kWideAutoMinM). H100, m = 128 /
  //   256, us, wide kernel vs cuBLAS BF16 (sixteenth session, run 3): 8B gate_up (117M) 51.8 / 108.1 vs 88.3 /
  //   102.2, 8B down (59M) 37.6 / 67.5 vs 52.0 / 58.7, 70B o (67M, 8192 wide) 40.9 / 58.9 vs 49.9 / 54.5, 70B
  //   gate_up (470M) and down (235M) 205.1 and 128.7 vs 345.9 and 180.5 at 128 (cuBLAS at 256); 8B qkv 20.7 vs
  //   20.9, 8B o 17.7 vs 14.6 and 70B qkv (84M, 10240 wide) 66.5 vs 62.4 at 128. INT8 the same way at 128 (8B
  //   gate_up 63.0, down 43.6, 70B o 47.8 vs cuBLAS 88.3, 52.0, 49.9; 8B qkv 23.4, 70B qkv 74.7 vs 20.9, 62.4). So
  //   128 from 100M weights and from 40M on weights at most 8192 wide; else 64.
  const int64_t weights = n * k;
  if (weights < (int64_t(8) << 20)) return k >= 1536 ? 32 : 8;
  (void)bits;  // INT4 and INT8 cross at the same m since the wide kernel (above)
  const bool wide_wins_128 = weights >= (int64_t(100) << 20) || (weights >= (int64_t(40) << 20) && n <= 8192);
  return wide_wins_128 ? 128 : 64;
}

cudaError_t gemm_auto(const void* a, const RepackedWeight& w, void* c, int64_t m, const GemmWorkspace& ws,
                      void* scratch, cublasHandle_t handle, cudaStream_t stream, int64_t crossover_m) {
  const int64_t cross = crossover_m >= 0 ? crossover_m : default_dense_crossover_m(w.shape.n, w.shape.k, w.shape.bits);
  if (m <= cross || scratch == nullptr || handle == nullptr) return gemm_quant(a, w, c, m, ws, stream);
  return gemm_dense(a, w, c, m, scratch, handle, stream);
}

cudaError_t gemm_auto_cached(const void* a, const RepackedWeight& w, const void* dense, void* c, int64_t m,
                             const GemmWorkspace& ws, cublasHandle_t handle, cudaStream_t stream, int64_t crossover_m) {
  const int64_t cross = crossover_m >= 0 ? crossover_m : default_dense_crossover_m(w.shape.n, w.shape.k, w.shape.bits);
  if (m <= cross || dense == nullptr || handle == nullptr) return gemm_quant(a, w, c, m, ws, stream);
  if (cudaError_t e = detail::validate_weight(w, "gemm_auto_cached"); e != cudaSuccess) return e;
  if (cudaError_t e = cublas_gemm_nt(a, dense, c, m, w.shape.n, w.shape.k, w.act, handle); e != cudaSuccess) return e;
  detail::clear_error();
  return cudaSuccess;
}

}  // namespace rtnq::cuda
