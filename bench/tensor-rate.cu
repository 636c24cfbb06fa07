// bench-tensor-rate: how fast one SM can turn weights into tensor-core products, with no memory traffic - the ceiling
// the swapped-operand GEMM kernel (src/cuda/gemm-swap-kernel.cuh) works under at small m. Every block is one
// warpgroup that multiplies a 256-column x 64-k weight stage, held in shared memory, by an N-token activation
// tile, over and over, in the ways the kernel could:
//   - wgmma with A from registers (RS), the weights fixed (the tensor-core issue rate alone) or dequantized from
//     INT4 words every unit (the kernel's inner loop: dequant_slice, then four m64nNk16); also dequantized and
//     scaled (dequant_slice_scaled: what 16-token tiles and up run), and with no bias subtraction (the integer
//     shifts and LOP3s alone: what a form that folds the -8 offset into the fp32 epilogue would cost);
//   - wgmma with A from shared memory (SS), weights fixed;
//   - mma.sync m16n8k16 (4 slices x N/8 tiles per warp), weights fixed or dequantized;
//   - at 128 tokens, 2 slices per warp (the wide kernel's warpgroups: 4 x 64 accumulators would not fit), weights
//     fixed or dequantized and scaled.
// "stage sync": a wgmma drain and a block barrier every 4 units, as the kernel's ring does at each stage.
// Output: ns per 1024 weights (one 64-column x 16-k piece) per SM, and the rate over all SMs in weights and in INT4
// bytes, for 1, 2, 4 and 8 blocks per SM. Compare the INT4 TB/s with the card's copy bandwidth (bench-gemm).
// Build on the GPU machine (no CMake there):
//   nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc bench/tensor-rate.cu -o tensor-rate
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/gemm-kernel.cuh"
#include "cuda/wgmma.cuh"

namespace {

using rtnq::cuda::detail::dequant_slice;
using rtnq::cuda::detail::dequant_slice_scaled;
using rtnq::cuda::detail::fence_proxy_async_smem;
using rtnq::cuda::detail::lop3_and_or;
using rtnq::cuda::detail::mma_16816;
using rtnq::cuda::detail::smem_u32;
using rtnq::cuda::detail::Wgmma;
using rtnq::cuda::detail::wgmma_commit;
using rtnq::cuda::detail::wgmma_desc_k128;
using rtnq::cuda::detail::wgmma_fence;
using rtnq::cuda::detail::wgmma_pin;
using rtnq::cuda::detail::wgmma_wait;
using T = __nv_bfloat16;

#define RATE_CHECK(expr)                                                                      \
  do {                                                                                        \
    const cudaError_t _e = (expr);                                                            \
    if (_e != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(_e)); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

// wgmma m64nNk16 with both operands in shared memory (the project's kernels use the register-A form only).
template <int N>
struct WgmmaSs;
template <>
struct WgmmaSs<8> {
  static __device__ __forceinline__ void run(float (&d)[1][4], uint64_t da, uint64_t db) {
    asm volatile("wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0,%1,%2,%3}, %4, %5, 1, 1, 1, 0, 0;\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3])
                 : "l"(da), "l"(db));
  }
};
template <>
struct WgmmaSs<16> {
  static __device__ __forceinline__ void run(float (&d)[2][4], uint64_t da, uint64_t db) {
    asm volatile(
        "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7}, %8, %9, 1, 1, 1, 0, 0;\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
          "+f"(d[1][3])
        : "l"(da), "l"(db));
  }
};

enum Mode : int { kRsFixed, kRsDequant, kRsDequantScaled, kRsDequantNoBias, kSs, kMmaFixed, kMmaDequant };

// INT4 word -> the four B registers holding 128 + q (BF16), without the subtraction of 136 that dequant_int4 does.
__device__ __forceinline__ void dequant_int4_no_bias(uint32_t w, uint32_t (&b)[4]) {
#pragma unroll
  for (int p = 0; p < 4; ++p) b[p] = lop3_and_or(w >> (4 * p), 0x000f000fu, 0x43004300u);
}

// KQ: the 16-column slices of its strip each warp multiplies (4; 2 at 128 tokens, where 4 x 64 accumulators would
// not fit: the wide kernel's two warpgroups split a strip's slices that way).
template <int N, int MODE, bool SYNC, int KQ = 4>
__global__ void __launch_bounds__(128) probe(const uint4* words_g, int iters, float* sink) {
  constexpr bool kWg = MODE != kMmaFixed && MODE != kMmaDequant;
  constexpr bool kDequant = MODE != kRsFixed && MODE != kSs && MODE != kMmaFixed;
  __shared__ __align__(1024) unsigned char sm[16384 + 8192 + 2048];
  unsigned char* b_tile = sm;                                  // N x 64 activations, 128-byte swizzled rows
  unsigned char* a_tile = sm + 16384;                          // SS: 64 x 64 weights
  const uint4* w_s = reinterpret_cast<const uint4*>(sm + 24576);  // 4 units x 32 lanes x 16 bytes of INT4 words
  const int tid = threadIdx.x, lane = tid & 31;
  for (int i = tid; i < 24576 / 4; i += 128)  // small finite BF16 values, never zeros
    reinterpret_cast<uint32_t*>(sm)[i] = 0x3c003c00u ^ ((i * 2654435761u) & 0x007f007fu);
  reinterpret_cast<uint4*>(sm + 24576)[tid] = words_g[tid];
  fence_proxy_async_smem();  // the tiles were stored through the generic proxy; wgmma reads them through the async one
  __syncthreads();
  const uint64_t db = wgmma_desc_k128(smem_u32(b_tile));
  const uint64_t da = wgmma_desc_k128(smem_u32(a_tile));
  float acc[KQ][N / 8][4] = {};
  uint32_t af[2][KQ][4];
  for (int b = 0; b < 2; ++b)
    for (int q = 0; q < KQ; ++q)
      for (int r = 0; r < 4; ++r) af[b][q][r] = 0x3c003c00u + lane + q + r;
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if constexpr (kWg) wgmma_wait<1>();  // the unit before last used this fragment buffer
      if constexpr (kDequant) {
        // Every word changes with the iteration, so no dequantization can be hoisted out of the loop.
        const uint4 wq = w_s[u * 32 + lane];
        const uint32_t x = uint32_t(it);
        const uint32_t words[4] = {wq.x ^ x, wq.y ^ x, wq.z ^ x, wq.w ^ x};
#pragma unroll
        for (int q = 0; q < KQ; ++q) {
          uint32_t b[4];
          if constexpr (MODE == kRsDequantScaled) {
            const uint32_t scale = (words[q] & 0x007f007fu) | 0x3c003c00u;  // small finite BF16 scales
            dequant_slice_scaled<4, T>(words, q, scale, b);
          } else if constexpr (MODE == kRsDequantNoBias) {
            dequant_int4_no_bias(words[q], b);
          } else {
            dequant_slice<4, T>(words, q, b);
          }
          af[u & 1][q][0] = b[0], af[u & 1][q][1] = b[2], af[u & 1][q][2] = b[1], af[u & 1][q][3] = b[3];
        }
      }
      if constexpr (kWg) {
        wgmma_fence();
#pragma unroll
        for (int q = 0; q < KQ; ++q) {
          if constexpr (MODE == kSs) WgmmaSs<N>::run(acc[q], da + 2 * u, db + 2 * u);
          else Wgmma<T, N>::run(acc[q], af[u & 1][q], db + 2 * u);
        }
        wgmma_commit();
      } else {
        const uint32_t* b32 = reinterpret_cast<const uint32_t*>(b_tile);
        uint32_t bfr[N / 8][2];
#pragma unroll
        for (int j = 0; j < N / 8; ++j) {
          bfr[j][0] = b32[(j * 8 + (lane >> 2)) * 32 + u * 8 + (lane & 3)];
          bfr[j][1] = b32[(j * 8 + (lane >> 2)) * 32 + u * 8 + 4 + (lane & 3)];
        }
#pragma unroll
        for (int q = 0; q < 4; ++q)
#pragma unroll
          for (int j = 0; j < N / 8; ++j) mma_16816<T>(acc[q][j], af[u & 1][q], bfr[j][0], bfr[j][1]);
      }
    }
    if constexpr (SYNC) {
      if constexpr (kWg) {
        wgmma_wait<0>();
        for (int q = 0; q < KQ; ++q) wgmma_pin(acc[q]);
      }
      __syncthreads();
    }
  }
  if constexpr (kWg) {
    wgmma_wait<0>();
    for (int q = 0; q < KQ; ++q) wgmma_pin(acc[q]);
  }
  float s = 0.f;
  for (int q = 0; q < KQ; ++q)
    for (int i = 0; i < N / 8; ++i)
      for (int e = 0; e < 4; ++e) s += acc[q][i][e];
  sink[blockIdx.x * 128 + tid] = s;  // keeps every product live
}

struct Ctx {
  int sms;
  const uint4* words;
  float* sink;
};

template <int N, int MODE, bool SYNC, int KQ = 4>
void row(const Ctx& c, const char* name) {
  constexpr int kIters = 4000;
  for (int per_sm : {1, 2, 4, 8}) {
    const int grid = c.sms * per_sm;
    probe<N, MODE, SYNC, KQ><<<grid, 128>>>(c.words, 10, c.sink);  // warm-up
    RATE_CHECK(cudaGetLastError());
    cudaEvent_t e0, e1;
    RATE_CHECK(cudaEventCreate(&e0));
    RATE_CHECK(cudaEventCreate(&e1));
    RATE_CHECK(cudaEventRecord(e0));
    probe<N, MODE, SYNC, KQ><<<grid, 128>>>(c.words, kIters, c.sink);
    RATE_CHECK(cudaGetLastError());
    RATE_CHECK(cudaEventRecord(e1));
    RATE_CHECK(cudaEventSynchronize(e1));
    float ms = 0.f;
    RATE_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    RATE_CHECK(cudaEventDestroy(e0));
    RATE_CHECK(cudaEventDestroy(e1));
    // Per block and iteration: 4 units x KQ pieces of 1024 weights (64 columns x 16 k).
    const double pieces_per_sm = double(kIters) * 4 * KQ * per_sm;
    const double ns = ms * 1e6 / pieces_per_sm;
    const double tw = 1024.0 / ns * c.sms / 1e3;  // T weights / s
    std::printf("| %s | %d | %s | %d | %.2f | %.2f | %.2f |\n", name, N, SYNC ? "yes" : "no", per_sm, ns, tw, tw / 2);
  }
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  RATE_CHECK(cudaGetDeviceProperties(&prop, 0));
  if (prop.major != 9) {
    std::fprintf(stderr, "bench-tensor-rate: needs an sm_90 card (wgmma); this is %s (sm_%d%d)\n", prop.name, prop.major,
                 prop.minor);
    return 2;
  }
  std::vector<uint32_t> h(512);
  for (int i = 0; i < 512; ++i) h[i] = 0x89abcdefu * uint32_t(i + 1);
  uint4* words;
  float* sink;
  RATE_CHECK(cudaMalloc(&words, h.size() * 4));
  RATE_CHECK(cudaMemcpy(words, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  RATE_CHECK(cudaMalloc(&sink, size_t(prop.multiProcessorCount) * 8 * 128 * sizeof(float)));
  const Ctx c{prop.multiProcessorCount, words, sink};
  std::printf("# bench-tensor-rate on %s (%d SMs): BF16, one warpgroup per block, no memory traffic\n", prop.name,
              prop.multiProcessorCount);
  std::printf("| probe | N | stage sync | blocks/SM | ns per 1024 weights per SM | T weights/s | INT4 TB/s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  row<8, kRsFixed, false>(c, "RS wgmma, weights fixed");
  row<16, kRsFixed, false>(c, "RS wgmma, weights fixed");
  row<32, kRsFixed, false>(c, "RS wgmma, weights fixed");
  row<64, kRsFixed, false>(c, "RS wgmma, weights fixed");
  row<8, kRsDequant, true>(c, "RS wgmma + INT4 dequant");
  row<16, kRsDequant, true>(c, "RS wgmma + INT4 dequant");
  row<32, kRsDequant, true>(c, "RS wgmma + INT4 dequant");
  row<16, kRsDequant, false>(c, "RS wgmma + INT4 dequant");
  row<8, kRsDequantNoBias, true>(c, "RS wgmma + INT4 dequant, no bias subtraction");
  row<16, kRsDequantScaled, true>(c, "RS wgmma + INT4 dequant + scale");
  row<64, kRsDequantScaled, true>(c, "RS wgmma + INT4 dequant + scale");
  row<64, kRsDequantScaled, false>(c, "RS wgmma + INT4 dequant + scale");
  row<128, kRsFixed, false, 2>(c, "RS wgmma, weights fixed, 2 slices");
  row<128, kRsDequantScaled, false, 2>(c, "RS wgmma + INT4 dequant + scale, 2 slices");
  row<8, kSs, false>(c, "SS wgmma, weights fixed");
  row<16, kSs, false>(c, "SS wgmma, weights fixed");
  row<8, kMmaFixed, false>(c, "mma.sync, weights fixed");
  row<16, kMmaFixed, false>(c, "mma.sync, weights fixed");
  row<8, kMmaDequant, false>(c, "mma.sync + INT4 dequant");
  row<16, kMmaDequant, false>(c, "mma.sync + INT4 dequant");
  RATE_CHECK(cudaFree(words));
  RATE_CHECK(cudaFree(sink));
  return 0;
}
