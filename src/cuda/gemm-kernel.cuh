// The fused dequantize-and-multiply kernel (one template; instantiated in gemm-instances-*.cu per bits x dtype x
// m tile).
//
// Work split ("stream-K"): the output is cut into tiles of 16*MB rows x 128 columns, each tile's k range into
// 128-deep k tiles, and the flattened list of (tile, k tile) iterations - k fastest, then the m tiles of one n
// tile, then n - is cut into gridDim.x equal contiguous stripes, one per block, with gridDim.x = the number of
// blocks the card holds at once. Every block therefore streams the same number of weight bytes (+-1 k tile): no
// tail wave, no idle SM, whatever the shape. A block that covers a tile's whole k range stores C directly;
// partial covers meet in an fp32 workspace, each adding its k-tile count to the tile's arrival counter, and the
// block whose count completes the tile converts, stores C and zeroes the workspace again. m tiles of one n tile
// are adjacent in the order, so with several m tiles the weight tile comes from L2 the second time.
//
// Inside a block: 8 warps = 2 (n: one 64-column strip each) x 4 (k: two 16-deep steps of each k tile each); the
// 4 k-warps' partial sums are added in shared memory at the end of a tile (rows < m only).
//
// Pipeline: kStages-deep cp.async ring (global -> shared) that runs straight through tile boundaries, holding
// per stage the weights of the k tile (2 strips, contiguous in the repacked layout, loaded with an L2
// evict-first hint when each weight is read once), the activation tile (zero-filled past m and k, and
// XOR-swizzled so ldmatrix is free of bank conflicts) and the scale rows the tile needs. The reduction buffer
// is separate from the ring, so the next tile's copies stay in flight during an epilogue.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace rtnq::cuda::detail {

inline constexpr int kThreads = 256;
inline constexpr int kTileN = 128;
inline constexpr int kTileK = 128;
inline constexpr int kMaxScaleRows = 8;  // one per 16-deep step when the group is 16
inline constexpr int kRedStride = kTileN + 4;  // fp32 row stride of the reduction buffer: spreads banks

struct GemmParams {
  const void* a;
  const uint4* w;          // repacked words
  const void* scales;      // [G][n_pad]
  void* c;
  float* ws;               // split-k partial sums [m][n] (zero on entry and exit)
  int* counters;           // per tile (n tile * m_tiles + m tile): k tiles arrived (zero on entry and exit)
  int m, n, k, n_pad, k_pad;
  int num_groups;
  int group;               // effective group length (k_pad for per-channel)
  int scale_rows;          // scale rows one k tile spans: 128 / group for groups < 128, else 1
  int k_tiles;             // k_pad / 128
  int m_tiles;             // ceil(m / (16 * MB))
  int64_t total_iters;     // m_tiles * n_tiles * k_tiles: the flattened work, striped over gridDim.x blocks
  int evict_first;         // 1: weights are read once (one m tile), keep them out of L2's way
};

template <int BITS, int MB>
struct TileSizes {
  // Four stages for every instance: the configuration that passed every GPU check on an H100. (Deeper rings for
  // MB = 1 and an atomic-free epilogue were tried together and broke INT8 with "illegal instruction"; see
  // docs/perf-notes.md.)
  static constexpr int kStages = 4;
  static constexpr int kWBytes = kTileK * kTileN * BITS / 8;
  static constexpr int kABytes = MB * 16 * kTileK * 2;
  static constexpr int kSBytes = kMaxScaleRows * kTileN * 2;
  static constexpr int kStageBytes = kWBytes + kABytes + kSBytes;
  static constexpr int kPipeBytes = kStages * kStageBytes;
  static constexpr int kRedBytes = MB * 16 * kRedStride * 4;
  static constexpr int kSmemBytes = kPipeBytes + kRedBytes;  // the ring keeps running during an epilogue
};

template <typename T2>
__device__ __forceinline__ uint32_t as_u32(T2 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
template <typename T2>
__device__ __forceinline__ T2 as_t2(uint32_t v) {
  return *reinterpret_cast<T2*>(&v);
}

template <typename T>
struct ActTraits;
template <>
struct ActTraits<half> {
  using T2 = half2;
  static constexpr uint32_t kMagic4 = 0x64006400u;  // fp16 1024.0: a nibble in the mantissa reads 1024 + u
  static __device__ __forceinline__ T2 bias4() { return __float2half2_rn(1032.f); }  // 1024 + 8
  static __device__ __forceinline__ half from_float(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ T2 low2(T2 v) { return __low2half2(v); }
  static __device__ __forceinline__ T2 high2(T2 v) { return __high2half2(v); }
  static __device__ __forceinline__ float low_f32(uint32_t w) { return __low2float(as_t2<half2>(w)); }
  static __device__ __forceinline__ float high_f32(uint32_t w) { return __high2float(as_t2<half2>(w)); }
};
template <>
struct ActTraits<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic4 = 0x43004300u;  // bf16 128.0: ulp 1 in [128, 256)
  static __device__ __forceinline__ T2 bias4() { return __float2bfloat162_rn(136.f); }  // 128 + 8
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  static __device__ __forceinline__ T2 low2(T2 v) { return __low2bfloat162(v); }
  static __device__ __forceinline__ T2 high2(T2 v) { return __high2bfloat162(v); }
  // A bf16 is the top half of an fp32: widening is a shift or a mask.
  static __device__ __forceinline__ float low_f32(uint32_t w) { return __uint_as_float(w << 16); }
  static __device__ __forceinline__ float high_f32(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
};

// Deferred scales (the strip kernel and the swapped-operand kernel's 8/16-token tiles): at a scale group's end, the
// group's partial sums pacc - MMAs of the integer weights - join the accumulators, scaled per column. In the MMA's
// C fragment lane (g, t) holds columns 16 q + g (entries 0, 1) and 16 q + 8 + g (entries 2, 3) of slice q, whose
// scales are the low and high halves of word q of the lane's scale row.
template <typename Tr, int Q, int TT>
__device__ __forceinline__ void fold_group_scales(float (&acc)[Q][TT][4], const float (&pacc)[Q][TT][4],
                                                  const uint4& scales) {
  const uint32_t s_all[4] = {scales.x, scales.y, scales.z, scales.w};
#pragma unroll
  for (int q = 0; q < Q; ++q) {
    const float lo = Tr::low_f32(s_all[q]), hi = Tr::high_f32(s_all[q]);
#pragma unroll
    for (int i = 0; i < TT; ++i) {
      acc[q][i][0] = fmaf(pacc[q][i][0], lo, acc[q][i][0]);
      acc[q][i][1] = fmaf(pacc[q][i][1], lo, acc[q][i][1]);
      acc[q][i][2] = fmaf(pacc[q][i][2], hi, acc[q][i][2]);
      acc[q][i][3] = fmaf(pacc[q][i][3], hi, acc[q][i][3]);
    }
  }
}

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  // (a & b) | c in one instruction: truth table 0xF0 & 0xCC | 0xAA = 0xEA.
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// One INT4 word -> the four B registers (q values, exact) of a 16x16 slice; see repack-layout.h for the order.
template <typename T>
__device__ __forceinline__ void dequant_int4(uint32_t w, uint32_t (&b)[4]) {
  using Tr = ActTraits<T>;
  const typename Tr::T2 bias = Tr::bias4();
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const uint32_t x = lop3_and_or(w >> (4 * p), 0x000f000fu, Tr::kMagic4);
    b[p] = as_u32(__hsub2(as_t2<typename Tr::T2>(x), bias));
  }
}

// Two INT8 words -> four B registers. FP16: byte permute into 0x64xx (1024 + u, exact up to 2047), minus 1152.
// BF16 has too few mantissa bits for that (ulp 2 above 256), so go through fp32's 2^23 magic instead.
template <typename T>
__device__ __forceinline__ void dequant_int8(uint32_t w0, uint32_t w1, uint32_t (&b)[4]);
template <>
__device__ __forceinline__ void dequant_int8<half>(uint32_t w0, uint32_t w1, uint32_t (&b)[4]) {
  const half2 bias = __float2half2_rn(1152.f);
  const uint32_t words[2] = {w0, w1};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    b[2 * i + 0] = as_u32(__hsub2(as_t2<half2>(__byte_perm(words[i], 0x64646464u, 0x4140)), bias));
    b[2 * i + 1] = as_u32(__hsub2(as_t2<half2>(__byte_perm(words[i], 0x64646464u, 0x4342)), bias));
  }
}
template <>
__device__ __forceinline__ void dequant_int8<__nv_bfloat16>(uint32_t w0, uint32_t w1, uint32_t (&b)[4]) {
  const uint32_t words[2] = {w0, w1};
  constexpr float kBias = 8388736.f;  // 2^23 + 128
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float lo = __uint_as_float(__byte_perm(words[i], 0x4B000000u, 0x7440 + 2 * h)) - kBias;
      const float hi = __uint_as_float(__byte_perm(words[i], 0x4B000000u, 0x7441 + 2 * h)) - kBias;
      b[2 * i + h] = as_u32(__floats2bfloat162_rn(lo, hi));
    }
  }
}

// Slice sl (16 columns) of a lane's unit words -> the four B registers b[2 j + kh] of its two n8 tiles, holding the
// integer weights q (exact in FP16 and BF16), not yet scaled.
template <int BITS, typename T>
__device__ __forceinline__ void dequant_slice(const uint32_t* words, int sl, uint32_t (&b)[4]) {
  if constexpr (BITS == 4) {
    dequant_int4<T>(words[sl], b);
  } else {
    dequant_int8<T>(words[2 * sl], words[2 * sl + 1], b);
  }
}

// dequant_slice, then scaled: tile j = 0 by the low half of s_word, tile j = 1 by the high half (see
// repack-layout.h). The dequantize-and-scale step of the three fused kernels (the swapped-operand kernel's
// 8-token INT4 tiles scale per group in fp32 after the MMA instead).
template <int BITS, typename T>
__device__ __forceinline__ void dequant_slice_scaled(const uint32_t* words, int sl, uint32_t s_word, uint32_t (&b)[4]) {
  using Tr = ActTraits<T>;
  using T2 = typename Tr::T2;
  dequant_slice<BITS, T>(words, sl, b);
  const T2 sc2 = as_t2<T2>(s_word);
  const T2 s0 = Tr::low2(sc2), s1 = Tr::high2(sc2);
  b[0] = as_u32(__hmul2(as_t2<T2>(b[0]), s0));
  b[1] = as_u32(__hmul2(as_t2<T2>(b[1]), s0));
  b[2] = as_u32(__hmul2(as_t2<T2>(b[2]), s1));
  b[3] = as_u32(__hmul2(as_t2<T2>(b[3]), s1));
}

template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy; src_bytes 0 zero-fills the destination (rows past m, columns past k).
__device__ __forceinline__ void cp_async16_zfill(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes));
}
// 16-byte async copy with an L2 cache policy (createpolicy): evict-first for weights read once.
__device__ __forceinline__ void cp_async16_hint(uint32_t dst, const void* src, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "l"(policy));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
// Orders this thread's earlier shared-memory writes in the generic proxy (cp.async, st.shared) before later reads
// of the same memory in the async proxy (wgmma's shared-memory operands), as the PTX memory model requires.
__device__ __forceinline__ void fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

template <int BITS, typename T, int MB>
__global__ void __launch_bounds__(kThreads, MB == 1 ? 3 : 1) gemm_quant_kernel(GemmParams p) {
  using Sz = TileSizes<BITS, MB>;
  using Tr = ActTraits<T>;
  constexpr int kLaneU4 = BITS / 4;  // 16-byte chunks one lane holds per unit
  constexpr int kRows = MB * 16;
  constexpr int kStages = Sz::kStages;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ int s_is_last;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wn = warp & 1, wk = warp >> 1;
  const int KT = p.k_tiles;
  // This block's stripe of the flattened iteration space (the launcher keeps total_iters * grid < 2^62 and
  // total_iters < 2^31). Tile and k tile are then advanced incrementally: a division per iteration costs more
  // issue slots than the whole INT4 dequantization of a tile.
  const int it_begin = int(int64_t(blockIdx.x) * p.total_iters / gridDim.x);
  const int it_end = int(int64_t(blockIdx.x + 1) * p.total_iters / gridDim.x);
  const int n_iters = it_end - it_begin;

  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));

  const T* a_g = static_cast<const T*>(p.a);
  const int64_t strip_u4 = int64_t(p.k_pad / 16) * 32 * kLaneU4;  // one strip's 16-byte chunks
  const T* s_g = static_cast<const T*>(p.scales);
  float* red = reinterpret_cast<float*>(smem + Sz::kPipeBytes);
  // Rows of A that can be non-zero in any stage: with one m tile, rows >= m are zeroed once and never copied
  // (at m = 1 that drops 15 of the 16 activation copies a thread would issue per k tile).
  const int a_rows = p.m_tiles == 1 ? p.m : kRows;

  // Producer position (the k tile the next load_stage fetches).
  int ld_tile = it_begin / KT, ld_kt = it_begin % KT;
  auto load_stage = [&](int stage) {
    const int tile = ld_tile, kt = ld_kt;
    if (++ld_kt == KT) ld_kt = 0, ++ld_tile;
    const int n0 = (tile / p.m_tiles) * kTileN, m0 = (tile % p.m_tiles) * kRows;
    const uint4* w_g = p.w + int64_t(n0 / 64) * strip_u4 + int64_t(kt) * (Sz::kWBytes / 32);
    unsigned char* base = smem + stage * Sz::kStageBytes;
    const uint32_t w_s = smem_u32(base), a_s = smem_u32(base + Sz::kWBytes),
                   sc_s = smem_u32(base + Sz::kWBytes + Sz::kABytes);
    // Weights: 2 strips x (8 units of the tile), each strip's part contiguous.
    constexpr int kWChunks = Sz::kWBytes / 16, kPerStrip = kWChunks / 2;
    static_assert(kWChunks % kThreads == 0 && (kRows * 16) % kThreads == 0, "whole chunks per thread");
#pragma unroll
    for (int i_ = 0; i_ < kWChunks / kThreads; ++i_) {
      const int i = tid + i_ * kThreads;
      const int strip = i / kPerStrip, off = i % kPerStrip;
      const uint4* src = w_g + strip * strip_u4 + off;
      if (p.evict_first) cp_async16_hint(w_s + i * 16, src, policy);
      else cp_async16(w_s + i * 16, src);
    }
    // Activations: kRows x 16 chunks of 8 elements; chunk c of row r lands at c ^ (r & 7).
#pragma unroll
    for (int i_ = 0; i_ < kRows * 16 / kThreads; ++i_) {
      const int i = tid + i_ * kThreads;
      const int r = i / 16, ch = i % 16;
      if (r >= a_rows) continue;
      const int gm = m0 + r, gk = kt * kTileK + ch * 8;
      const bool ok = gm < p.m && gk < p.k;
      const T* src = ok ? a_g + int64_t(gm) * p.k + gk : a_g;
      cp_async16_zfill(a_s + (r * 16 + (ch ^ (r & 7))) * 16, src, ok ? 16 : 0);
    }
    // Scale rows: row i is group (kt*128 + i*group) / group, clamped (padding past k reuses the last group).
    if (tid < p.scale_rows * 16) {
      const int row = tid / 16, ch = tid % 16;
      int g = (kt * kTileK + row * p.group) / p.group;
      g = min(g, p.num_groups - 1);
      cp_async16(sc_s + (row * kTileN + ch * 8) * 2, s_g + int64_t(g) * p.n_pad + n0 + ch * 8);
    }
  };

  float acc[MB][8][4];
#pragma unroll
  for (int mb = 0; mb < MB; ++mb)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mb][j][e] = 0.f;

  const int steps_per_row = 8 / p.scale_rows;  // 16-deep steps sharing one scale row

  // Rows that are never copied are zero in every stage (disjoint from the copies' destinations).
  if (a_rows < kRows) {
    for (int i = tid; i < kStages * (kRows - a_rows) * 16; i += kThreads) {
      const int stage = i / ((kRows - a_rows) * 16), rest = i % ((kRows - a_rows) * 16);
      const int r = a_rows + rest / 16, ch = rest % 16;
      *reinterpret_cast<uint4*>(smem + stage * Sz::kStageBytes + Sz::kWBytes + (r * 16 + (ch ^ (r & 7))) * 16) =
          make_uint4(0, 0, 0, 0);
    }
  }
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_iters) load_stage(s);
    cp_async_commit();
  }
  for (int i = tid; i < kRows * kRedStride; i += kThreads) red[i] = 0.f;
  // (the first __syncthreads of the loop orders these stores before any use)

  T* c_g = static_cast<T*>(p.c);
  int seg_begin = 0;                                   // first iteration (relative) of the current tile's part
  int cur_tile = it_begin / KT, cur_kt = it_begin % KT;  // consumer position
  int stage = 0, ld_stage = kStages - 1;
  for (int i = 0; i < n_iters; ++i) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage i is visible; everyone is done with the stage refilled next
    if (i + kStages - 1 < n_iters) load_stage(ld_stage);
    cp_async_commit();
    if (++ld_stage == kStages) ld_stage = 0;
    const unsigned char* base = smem + stage * Sz::kStageBytes;
    if (++stage == kStages) stage = 0;
    const uint4* w_s = reinterpret_cast<const uint4*>(base);
    const uint32_t a_s = smem_u32(base + Sz::kWBytes);
    const T* sc_s = reinterpret_cast<const T*>(base + Sz::kWBytes + Sz::kABytes);
#pragma unroll
    for (int kl = 0; kl < 2; ++kl) {
      const int ks = wk * 2 + kl;  // 16-deep step inside the tile
      uint32_t af[MB][4];
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) {
        const int r = mb * 16 + (lane & 15), ch = ks * 2 + (lane >> 4);
        ldmatrix_x4(af[mb], a_s + (r * 16 + (ch ^ (r & 7))) * 16);
      }
      uint4 wq[kLaneU4];
#pragma unroll
      for (int i = 0; i < kLaneU4; ++i) wq[i] = w_s[((wn * 8 + ks) * 32 + lane) * kLaneU4 + i];
      const uint4 sc4 =
          *reinterpret_cast<const uint4*>(sc_s + (ks / steps_per_row) * kTileN + wn * 64 + (lane >> 2) * 8);
      const uint32_t sc_words[4] = {sc4.x, sc4.y, sc4.z, sc4.w};
      const uint32_t* wwords = reinterpret_cast<const uint32_t*>(wq);
#pragma unroll
      for (int sl = 0; sl < 4; ++sl) {
        uint32_t b[4];
        dequant_slice_scaled<BITS, T>(wwords, sl, sc_words[sl], b);  // scales of tiles j = 0 (low), 1 (high)
#pragma unroll
        for (int mb = 0; mb < MB; ++mb) {
          mma_16816<T>(acc[mb][2 * sl + 0], af[mb], b[0], b[1]);
          mma_16816<T>(acc[mb][2 * sl + 1], af[mb], b[2], b[3]);
        }
      }
    }

    // End of this block's share of a tile: reduce and hand it on (block-uniform condition).
    const int tile = cur_tile;
    const bool tile_done = ++cur_kt == KT;
    if (tile_done) cur_kt = 0, ++cur_tile;
    if (!tile_done && i != n_iters - 1) continue;
    const int n0 = (tile / p.m_tiles) * kTileN, m_tile = tile % p.m_tiles, m0 = m_tile * kRows;
    const int rows = min(kRows, p.m - m0);
    const int covered = i - seg_begin + 1;
    seg_begin = i + 1;
    // 4 k-warps -> shared fp32 (only rows that exist: at m = 1 that is 1/16 of the atomics).
#pragma unroll
    for (int mb = 0; mb < MB; ++mb)
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = mb * 16 + (lane >> 2) + (e >= 2 ? 8 : 0);
          const int col = wn * 64 + j * 8 + (lane & 3) * 2 + (e & 1);
          if (row < rows) atomicAdd(&red[row * kRedStride + col], acc[mb][j][e]);
          acc[mb][j][e] = 0.f;
        }
    __syncthreads();
    if (covered == KT) {
      // The whole k range: store C, zero the buffer for the next tile.
      for (int i = tid; i < rows * kTileN; i += kThreads) {
        const int row = i / kTileN, col = i % kTileN;
        float* slot = &red[row * kRedStride + col];
        if (n0 + col < p.n) c_g[int64_t(m0 + row) * p.n + n0 + col] = Tr::from_float(*slot);
        *slot = 0.f;
      }
      __syncthreads();
      continue;
    }
    for (int i = tid; i < rows * kTileN; i += kThreads) {
      const int row = i / kTileN, col = i % kTileN;
      float* slot = &red[row * kRedStride + col];
      if (n0 + col < p.n) atomicAdd(&p.ws[int64_t(m0 + row) * p.n + n0 + col], *slot);
      *slot = 0.f;
    }
    __threadfence();
    __syncthreads();
    int* counter = p.counters + tile;
    if (tid == 0) s_is_last = (atomicAdd(counter, covered) + covered == KT);
    __syncthreads();
    if (s_is_last) {
      __threadfence();
      for (int i = tid; i < rows * kTileN; i += kThreads) {
        const int row = i / kTileN, col = i % kTileN;
        if (n0 + col < p.n) {
          float* slot = &p.ws[int64_t(m0 + row) * p.n + n0 + col];
          c_g[int64_t(m0 + row) * p.n + n0 + col] = Tr::from_float(__ldcg(slot));
          __stcg(slot, 0.f);
        }
      }
      if (tid == 0) *counter = 0;
    }
    __syncthreads();  // s_is_last and the buffer are reused by the next tile
  }
  cp_async_wait<0>();  // nothing may be in flight into shared memory when the block exits
}

// Launch helpers, explicitly instantiated per (bits, dtype, m tile) in gemm-instances-*.cu so the two
// dtypes compile in parallel.
template <int BITS, typename T, int MB>
cudaError_t launch_gemm_quant(const GemmParams& p, dim3 grid, cudaStream_t stream) {
  constexpr int kSmem = TileSizes<BITS, MB>::kSmemBytes;
  static_assert(kSmem <= 227 * 1024, "fits the opt-in shared memory of sm_90");
  static const cudaError_t attr_err =
      cudaFuncSetAttribute(gemm_quant_kernel<BITS, T, MB>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attr_err != cudaSuccess) return attr_err;
  gemm_quant_kernel<BITS, T, MB><<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

template <int BITS, typename T, int MB>
int gemm_quant_blocks_per_sm() {
  constexpr int kSmem = TileSizes<BITS, MB>::kSmemBytes;
  static const int blocks = [] {
    int b = 0;
    if (cudaFuncSetAttribute(gemm_quant_kernel<BITS, T, MB>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem) !=
            cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, gemm_quant_kernel<BITS, T, MB>, kThreads, kSmem) !=
            cudaSuccess) {
      (void)cudaGetLastError();
      return 1;
    }
    return b > 0 ? b : 1;
  }();
  return blocks;
}

#define RTNQ_GEMM_INSTANCE(PREFIX, BITS, T, MB)                                                               \
  PREFIX template cudaError_t launch_gemm_quant<BITS, T, MB>(const GemmParams&, dim3, cudaStream_t); \
  PREFIX template int gemm_quant_blocks_per_sm<BITS, T, MB>();

#define RTNQ_GEMM_INSTANCES_FOR(PREFIX, T) \
  RTNQ_GEMM_INSTANCE(PREFIX, 4, T, 1)      \
  RTNQ_GEMM_INSTANCE(PREFIX, 4, T, 4)      \
  RTNQ_GEMM_INSTANCE(PREFIX, 8, T, 1)      \
  RTNQ_GEMM_INSTANCE(PREFIX, 8, T, 4)

}  // namespace rtnq::cuda::detail
