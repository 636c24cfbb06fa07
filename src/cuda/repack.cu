// GPU repack (checkpoint layout -> fragment order of repack-layout.h) and the dense dequantization used by the
// cuBLAS path. The repack walks the OUTPUT (one thread per repacked word, gathering its fields), the inverse of
// the CPU reference, so a test that compares the two checks the layout from both directions.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "cuda/cuda-error.h"
#include "cuda/gemm-kernel.cuh"
#include "cuda/gemm.h"

namespace rtnq::cuda {
namespace {

__global__ void repack_words_kernel(const int32_t* __restrict__ packed, RepackShape s, uint32_t* __restrict__ out) {
  const int64_t total = repacked_weight_words(s);
  const int64_t units_k = s.k_pad / kUnitK;
  const int64_t row_words = (s.k * s.bits + 31) / 32;
  const int per_word = 32 / s.bits;
  const uint32_t mask = (1u << s.bits) - 1u, offset = 1u << (s.bits - 1);
  for (int64_t wi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; wi < total; wi += int64_t(gridDim.x) * blockDim.x) {
    const int wsub = int(wi % s.bits);
    int64_t rest = wi / s.bits;
    const int lane = int(rest % 32);
    rest /= 32;
    const int64_t unit = rest % units_k, strip = rest / units_k;
    const int r = lane / 4, t = lane % 4;
    uint32_t word = 0;
    for (int f = 0; f < per_word; ++f) {
      int sl, j, kh, hi;
      if (s.bits == 4) {
        sl = wsub;
        j = (f % 4) / 2;
        kh = f % 2;
        hi = f / 4;
      } else {
        sl = wsub / 2;
        j = wsub % 2;
        kh = f / 2;
        hi = f % 2;
      }
      const int64_t n = strip * kUnitN + sl * 16 + j * 8 + r;
      const int64_t k = unit * kUnitK + kh * 8 + t * 2 + hi;
      uint32_t field = offset;  // q = 0 in the padding
      if (n < s.n && k < s.k)
        field = (uint32_t(packed[n * row_words + k / per_word]) >> ((k % per_word) * s.bits)) & mask;
      word |= field << (f * s.bits);
    }
    out[wi] = word;
  }
}

__global__ void repack_scales_kernel(const uint16_t* __restrict__ scales, RepackShape s, uint16_t* __restrict__ out) {
  const int64_t total = repacked_scale_count(s);
  for (int64_t oi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; oi < total; oi += int64_t(gridDim.x) * blockDim.x) {
    const int64_t g = oi / s.n_pad, rem = oi % s.n_pad;
    const int x = int(rem % kUnitN), r = x / 8, y = x % 8, sl = y / 2, j = y % 2;
    const int64_t n = (rem / kUnitN) * kUnitN + sl * 16 + j * 8 + r;
    out[oi] = n < s.n ? scales[n * s.num_groups + g] : uint16_t(0);
  }
}

// One block: a 64-column strip x 64 k (4 units, one per warp), staged in shared memory so the dense rows are
// written with coalesced 16-byte stores.
template <typename T, int BITS>
__global__ void __launch_bounds__(128) dequant_dense_kernel(const uint4* __restrict__ words, const T* __restrict__ scales,
                                                           RepackShape s, T* __restrict__ dense) {
  using Tr = detail::ActTraits<T>;
  using T2 = typename Tr::T2;
  constexpr int kLaneU4 = BITS / 4, kStride = 72;
  __shared__ __align__(16) T tile[64 * kStride];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane / 4, t = lane % 4;
  const int64_t strip = blockIdx.y, unit = int64_t(blockIdx.x) * 4 + warp;
  const uint4* src = words + ((strip * (s.k_pad / kUnitK) + unit) * 32 + lane) * kLaneU4;
  uint4 wq[kLaneU4];
#pragma unroll
  for (int i = 0; i < kLaneU4; ++i) wq[i] = src[i];
  const int64_t g = min(unit * kUnitK / s.group, s.num_groups - 1);
  const uint4 sc4 = *reinterpret_cast<const uint4*>(scales + g * s.n_pad + strip * kUnitN + r * 8);
  const uint32_t sc_words[4] = {sc4.x, sc4.y, sc4.z, sc4.w};
  const uint32_t* ww = reinterpret_cast<const uint32_t*>(wq);
#pragma unroll
  for (int sl = 0; sl < 4; ++sl) {
    uint32_t b[4];
    if constexpr (BITS == 4) {
      detail::dequant_int4<T>(ww[sl], b);
    } else {
      detail::dequant_int8<T>(ww[2 * sl], ww[2 * sl + 1], b);
    }
    const T2 sc2 = detail::as_t2<T2>(sc_words[sl]);
#pragma unroll
    for (int reg = 0; reg < 4; ++reg) {
      const int j = reg / 2, kh = reg % 2;
      const T2 v = __hmul2(detail::as_t2<T2>(b[reg]), j == 0 ? Tr::low2(sc2) : Tr::high2(sc2));
      const int nl = sl * 16 + j * 8 + r, kl = warp * 16 + kh * 8 + t * 2;
      *reinterpret_cast<T2*>(&tile[nl * kStride + kl]) = v;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 64 * 8; i += 128) {
    const int row = i / 8, ch = i % 8;
    const int64_t n = strip * kUnitN + row, k = int64_t(blockIdx.x) * 64 + ch * 8;
    if (n < s.n && k < s.k)
      *reinterpret_cast<uint4*>(dense + n * s.k + k) = *reinterpret_cast<const uint4*>(&tile[row * kStride + ch * 8]);
  }
}

unsigned grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return unsigned(blocks < 65536 * 16 ? blocks : 65536 * 16);
}

}  // namespace

cudaError_t repacked_weight_alloc(int64_t n, int64_t k, int bits, int64_t group_size, DType act, RepackedWeight* out) {
  if (out == nullptr) return detail::fail(cudaErrorInvalidValue, "repacked_weight_alloc: out is null");
  *out = {};
  if (n < 1 || k < 1 || (bits != 4 && bits != 8))
    return detail::fail(cudaErrorInvalidValue, "repacked_weight_alloc: bad shape [" + std::to_string(n) + ", " +
                                                   std::to_string(k) + "] or bits " + std::to_string(bits));
  out->shape = make_repack_shape(n, k, bits, group_size);
  out->act = act;
  cudaError_t e = cudaMalloc(&out->words, size_t(repacked_weight_words(out->shape)) * 4);
  if (e == cudaSuccess) e = cudaMalloc(&out->scales, size_t(repacked_scale_count(out->shape)) * 2);
  if (e != cudaSuccess) {
    repacked_weight_free(out);
    return detail::fail(e, "repacked_weight_alloc: cudaMalloc failed");
  }
  detail::clear_error();
  return cudaSuccess;
}

void repacked_weight_free(RepackedWeight* w) {
  if (w == nullptr) return;
  if (w->words) cudaFree(w->words);
  if (w->scales) cudaFree(w->scales);
  w->words = nullptr;
  w->scales = nullptr;
}

cudaError_t repack_weight(const int32_t* packed, const void* scales, RepackedWeight* out, cudaStream_t stream) {
  if (out == nullptr) return detail::fail(cudaErrorInvalidValue, "repack_weight: out is null");
  if (cudaError_t e = detail::validate_weight(*out, "repack_weight"); e != cudaSuccess) return e;
  if (packed == nullptr || scales == nullptr)
    return detail::fail(cudaErrorInvalidValue, "repack_weight: packed and scales must be non-null");
  const RepackShape& s = out->shape;
  repack_words_kernel<<<grid_for(repacked_weight_words(s), 256), 256, 0, stream>>>(packed, s, out->words);
  if (cudaError_t e = detail::check_launch("repack_weight (words)"); e != cudaSuccess) return e;
  repack_scales_kernel<<<grid_for(repacked_scale_count(s), 256), 256, 0, stream>>>(
      static_cast<const uint16_t*>(scales), s, static_cast<uint16_t*>(out->scales));
  if (cudaError_t e = detail::check_launch("repack_weight (scales)"); e != cudaSuccess) return e;
  detail::clear_error();
  return cudaSuccess;
}

cudaError_t dequantize_repacked(const RepackedWeight& w, void* dense, cudaStream_t stream) {
  if (cudaError_t e = detail::validate_weight(w, "dequantize_repacked"); e != cudaSuccess) return e;
  if (dense == nullptr || reinterpret_cast<uintptr_t>(dense) % 16 != 0)
    return detail::fail(cudaErrorInvalidValue, "dequantize_repacked: dense must be non-null and 16-byte aligned");
  const RepackShape& s = w.shape;
  const dim3 grid(unsigned(s.k_pad / 64), unsigned(s.n_pad / kUnitN));
  const uint4* words = reinterpret_cast<const uint4*>(w.words);
  if (w.act == DType::kF16) {
    if (s.bits == 4)
      dequant_dense_kernel<half, 4><<<grid, 128, 0, stream>>>(words, static_cast<const half*>(w.scales), s,
                                                             static_cast<half*>(dense));
    else
      dequant_dense_kernel<half, 8><<<grid, 128, 0, stream>>>(words, static_cast<const half*>(w.scales), s,
                                                             static_cast<half*>(dense));
  } else {
    using B = __nv_bfloat16;
    if (s.bits == 4)
      dequant_dense_kernel<B, 4><<<grid, 128, 0, stream>>>(words, static_cast<const B*>(w.scales), s,
                                                          static_cast<B*>(dense));
    else
      dequant_dense_kernel<B, 8><<<grid, 128, 0, stream>>>(words, static_cast<const B*>(w.scales), s,
                                                          static_cast<B*>(dense));
  }
  if (cudaError_t e = detail::check_launch("dequantize_repacked"); e != cudaSuccess) return e;
  detail::clear_error();
  return cudaSuccess;
}

}  // namespace rtnq::cuda
