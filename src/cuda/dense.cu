// The compute-bound side of the dual path: dequantize once into a scratch buffer, then cuBLAS; and the
// choice between that and the fused kernel.
#include <atomic>
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

double card_peak_hbm_gbs() {
  // Per device (a process may drive cards of two kinds); a race only computes the same value twice.
  constexpr int kMaxDevices = 64;
  static std::atomic<double> cache[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) {
    (void)cudaGetLastError();
    return 0;
  }
  double gbs = cache[dev].load(std::memory_order_relaxed);
  if (gbs > 0) return gbs;
  int clock_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // two transfers a clock (HBM: double data rate)
  cache[dev].store(gbs, std::memory_order_relaxed);
  return gbs;
}

int64_t dense_crossover_m_for(int64_t n, int64_t k, int bits, double hbm_gbs) {
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
  //   128 from 100M weights and from 40M on weights at most 8192 wide; else 64. 70B down (235M, 8192 wide, k =
  //   28672) wins up to 256: fused vs cuBLAS at 192 171.7 vs 184.8 and 172.1 vs 187.3, at 256 194.0 vs 206.0,
  //   179.7 vs 192.9 and 191.6 vs 195.3 (four H100 tables, seventeenth and eighteenth sessions).
  // H200 (4.8 TB/s peak; nineteenth session, `bench-gemm --cross`, fused vs cuBLAS timed in turn, medians of 3):
  // cuBLAS reads its dense copy 1.4x faster, so the lighter linears cross earlier. 8B o (17M) loses from 64 (11.9
  // vs 11.2 us; 11.2 vs 13.4 at 48); 70B o (67M, 8192 wide) from 80 (36.7 vs 35.5; 40.3 vs 36.8 at 128). 8B qkv
  // and 70B qkv still cross at 64, 8B down (59M, 4096 wide) and both gate_up at 128 (8B down by 3%: 35.5 vs 36.7).
  // 70B down at 128 read 115.7 vs 121.9 in one run and 131.9 vs 125.0 in the next: not the H100's 256. So: 48
  // under 20M weights; 128 from 100M weights and from 40M on weights at most 4096 wide; else 64.
  const int64_t weights = n * k;
  if (weights < (int64_t(8) << 20)) return k >= 1536 ? 32 : 8;
  (void)bits;  // INT4 and INT8 cross at the same m since the wide kernel (above)
  constexpr int64_t kMi = int64_t(1) << 20;
  if (hbm_gbs >= kHighBandwidthGbs) {
    if (weights < 20 * kMi) return 48;
    return weights >= 100 * kMi || (weights >= 40 * kMi && n <= 4096) ? 128 : 64;
  }
  if (weights >= 200 * kMi && n <= 8192) return 256;
  return weights >= 100 * kMi || (weights >= 40 * kMi && n <= 8192) ? 128 : 64;
}

int64_t default_dense_crossover_m(int64_t n, int64_t k, int bits) {
  return dense_crossover_m_for(n, k, bits, card_peak_hbm_gbs());
}

int64_t dequant_crossover_m_for(int64_t n, int64_t k, int bits, double hbm_gbs) {
  // Measured by bench-gemm --cross on an H200 (twenty-first session, docs/perf-notes.md): the largest m at which the
  // fused call still beats dequantize + cuBLAS, INT4 (fused / dequantize + cuBLAS at that m, then at the next m):
  //   SmolLM2 qkv, o, gate_up, down (< 8M weights): 32 (0.72-0.96, then 1.02-1.18 at 64);
  //   8B qkv (25M): 256 (0.84; 1.23 at 384, noisy above); 8B o (17M): 512 (0.96; 1.64 at 640, 0.99 at 1024);
  //   8B gate_up (117M), down (59M), 70B qkv (84M), gate_up (470M), down (235M): 768 (0.92-1.00; 1.01-1.12 at
  //   1024); 70B o (67M): 640 (0.94; 1.04 at 768);
  //   405B qkv, o, gate_up, down (268M-1.7G): 1024 (0.98-0.99; 1.06-1.07 at 1536).
  // Why it sits so far above the kept copy's 48-128: dequantization writes 2 bytes a weight and cuBLAS reads them
  // back, about as long as the product itself takes up to a few hundred tokens. The fused kernel's own cost above
  // ~256 tokens is ~1.2-1.3x cuBLAS's (both compute-bound), so it loses once 0.2-0.3 x cuBLAS's time exceeds the
  // dequantization's: m ~ 5 x the card's BF16 rate / its HBM bandwidth, whatever the shape.
  // The rule: 32 under 8M weights, 256 under 40M, else 768. At every m measured it takes the faster of the two
  // paths or one at most 4% slower (8B o at 384-512, 70B o at 768, 405B at 1024), except 8B qkv at 640 (fused
  // 0.89, between 1.06 at 512 and 1.09 at 768: a token-tile effect, not a trend).
  // INT8 (the fused kernel 12-27% slower, its dequantization reading twice the bytes) crossed at 384 on 8B gate_up
  // (1.005 at 512), 512 on 8B o (1.000) and 640 on 70B qkv (1.03 at 768): 512 from 40M weights, as INT4 below.
  // The H100's table (seventeenth session: 128, 192, 256, 512, 1024) agrees: at 512 the fused kernel won on 5 of
  // the 6 large linears (0.80-0.97; 70B qkv 1.08), at 1024 it was level or behind (0.99-1.14), at 256 it won
  // everywhere (0.49-0.71). So no per-card split: hbm_gbs is taken for a card that would need one.
  (void)hbm_gbs;
  const int64_t weights = n * k;
  constexpr int64_t kMi = int64_t(1) << 20;
  if (weights < 8 * kMi) return 32;
  if (weights < 40 * kMi) return 256;
  return bits == 8 ? 512 : 768;
}

int64_t default_dequant_crossover_m(int64_t n, int64_t k, int bits) {
  return dequant_crossover_m_for(n, k, bits, card_peak_hbm_gbs());
}

cudaError_t gemm_auto(const void* a, const RepackedWeight& w, void* c, int64_t m, const GemmWorkspace& ws,
                      void* scratch, cublasHandle_t handle, cudaStream_t stream, int64_t crossover_m) {
  const int64_t cross =
      crossover_m >= 0 ? crossover_m : default_dequant_crossover_m(w.shape.n, w.shape.k, w.shape.bits);
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
