// The swapped-operand kernel: the fused dequantize-and-multiply for m > 16 (batched decoding, short prompts),
// computed as C^T = W * A^T so the weights, not the activations, fill the 16-row side of each mma.
//
// Why swap. mma.sync m16n8k16 multiplies a 16-row A fragment by an 8-column B fragment. The tiled kernel
// (gemm-kernel.cuh) puts the activations on the 16-row side and keeps one 16- or 64-row tile of A per block,
// shared by only 128 weight columns, and splits k over its warps (a shared-memory reduction per tile). Here the
// dequantized weights are the A operand - the repacked layout already gives a lane, for one 16 x 64 unit, words
// that are A fragments of four 16-column slices (see below) - and the activations are the B operand, 8 tokens per
// fragment, loaded with ldmatrix from one activation tile that all four warps of the block share. So:
//   - a block covers 4 strips = 256 output columns, one strip per warp; every warp streams its own strip's weight
//     units (one 16-byte load per lane per unit, INT4) and owns its output columns outright, so there is no
//     reduction between warps;
//   - one activation tile (NT tokens x 64 k) serves 256 columns, 4x fewer activation bytes per weight byte than
//     a per-warp copy;
//   - each unit is 4 (slices) x NT/8 (token tiles) mma per warp.
//
// A-fragment identity. For lane (g = lane / 4, t = lane % 4) and slice s, word s of the lane's unit dequantizes
// (dequant_int4 / dequant_int8) into b[0..3] = the B registers of n8 tiles j = 0, 1 with (kh = 0, 1): b[2j + kh]
// holds column 16 s + 8 j + g at k = 8 kh + 2 t, +1. The A fragment of the 16 (columns) x 16 (k) slice wants
// a0 = (row g, k 2t), a1 = (row g + 8, k 2t), a2 = (row g, k 2t + 8), a3 = (row g + 8, k 2t + 8), i.e.
// {b[0], b[2], b[1], b[3]}. The accumulator then holds rows (= output columns) g and g + 8 of the slice and
// columns (= tokens) 2t, 2t + 1 of the token tile.
//
// Work split: stream-K over (column group of 4 strips, m tile, 64-deep k batch), k fastest, then the m tiles of
// one column group (their weights come from L2 the second time), as in the tiled kernel. Partial covers meet in
// the fp32 workspace, stored transposed ([n][m]: a lane's two tokens are adjacent, so the atomics are float2),
// with a per-tile arrival counter; the block that completes a tile converts, stores C and zeroes the workspace.
// Pipeline: block-wide kStages-deep cp.async ring; weights with an L2 evict-first hint when each is read once.
// Programmatic dependent launch as in the decode kernel: weights and scales of the first stages are requested
// before griddepcontrol.wait, the activations after it.
#pragma once

#include <atomic>

#include "cuda/gemm-kernel.cuh"

namespace rtnq::cuda::detail {

inline constexpr int kSwapThreads = 128;  // 4 warps, one 64-column strip each
inline constexpr int kSwapStrips = kSwapThreads / 32;
inline constexpr int kSwapCols = kSwapStrips * 64;  // output columns per block
inline constexpr int kSwapK = 64;                   // k per stage (4 units)

struct SwapParams {
  const void* a;
  const uint4* w;          // repacked words
  const void* scales;      // [G][n_pad]
  void* c;
  float* ws;               // split-k partial sums, transposed: [n][m] (zero on entry and exit)
  int* counters;           // per tile (column group * m_tiles + m tile): k batches arrived (zero on entry and exit)
  int m, n, k, n_pad;
  int num_groups;
  int group;               // effective group length (k_pad for per-channel)
  int ku;                  // k units (16 deep) per strip: k_pad / 16
  int kbs;                 // k batches (64 deep) per tile: k_pad / 64
  int strips;              // n_pad / 64
  int m_tiles;             // ceil(m / NT)
  int total_iters;         // column groups * m_tiles * kbs
  int scale_rows;          // scale rows per stage: 1 (group >= 64), 2 (32) or 4 (16)
  int unit_shift;          // unit u of a stage uses scale row u >> unit_shift
  int evict_first;         // 1: one m tile, each weight is read once
};

template <int BITS, int NT>
struct SwapSizes {
  static constexpr int kLaneU4 = BITS / 4;                        // 16-byte words per lane per unit
  static constexpr int kWarpWBytes = (kSwapK / 16) * 32 * kLaneU4 * 16;  // one strip's 4 units
  static constexpr int kWBytes = kSwapStrips * kWarpWBytes;
  static constexpr int kABytes = NT * kSwapK * 2;                  // NT tokens x 64 k, 128 bytes a row
  static constexpr int kSBytes = 4 * kSwapCols * 2;                // up to 4 scale rows (group 16)
  static constexpr int kStageBytes = kWBytes + kABytes + kSBytes;
  static constexpr int kStages = 4;
  static constexpr int kSmemBytes = kStages * kStageBytes;
  static_assert(kStageBytes % 128 == 0, "stages keep the activation tile's rows on 128-byte boundaries");
  static_assert(NT % 16 == 0 && NT >= 16 && NT <= 64, "token tiles come in ldmatrix.x4 pairs");
  static_assert(kSmemBytes <= 227 * 1024, "fits the opt-in shared memory of sm_90");
};

template <int BITS, typename T, int NT>
__global__ void __launch_bounds__(kSwapThreads, NT == 64 ? 2 : (NT == 32 ? 3 : 4)) gemm_swap_kernel(SwapParams p) {
  using Sz = SwapSizes<BITS, NT>;
  using Tr = ActTraits<T>;
  using T2 = typename Tr::T2;
  constexpr int kLaneU4 = Sz::kLaneU4, kStages = Sz::kStages, kTT = NT / 8;  // token tiles
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int s_is_last;

  asm volatile("griddepcontrol.launch_dependents;");

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int it_begin = int(int64_t(blockIdx.x) * p.total_iters / gridDim.x);
  const int it_end = int(int64_t(blockIdx.x + 1) * p.total_iters / gridDim.x);
  const int n_iters = it_end - it_begin;
  const int KB = p.kbs;

  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  const T* a_g = static_cast<const T*>(p.a);
  const T* s_g = static_cast<const T*>(p.scales);
  const int64_t strip_u4 = int64_t(p.ku) * 32 * kLaneU4;  // one strip's 16-byte chunks

  // Producer position; the weights/scales and the activations of a stage are issued separately (the prologue
  // puts griddepcontrol.wait between them), each from its own cursor.
  int w_tile = it_begin / KB, w_kb = it_begin % KB;
  int a_tile = w_tile, a_kb = w_kb;
  auto issue_w = [&](int stage) {
    const int tile = w_tile, kb = w_kb;
    if (++w_kb == KB) w_kb = 0, ++w_tile;
    const int cg = tile / p.m_tiles;
    unsigned char* base = smem + stage * Sz::kStageBytes;
    const int strip = cg * kSwapStrips + warp;
    if (strip < p.strips) {
      const uint32_t dst = smem_u32(base + warp * Sz::kWarpWBytes);
      const uint4* src = p.w + strip * strip_u4 + int64_t(kb) * (Sz::kWarpWBytes / 16);
#pragma unroll
      for (int i = 0; i < Sz::kWarpWBytes / 16 / 32; ++i) {
        if (p.evict_first) cp_async16_evict_first(dst + (lane + 32 * i) * 16, src + lane + 32 * i, policy);
        else cp_async16(dst + (lane + 32 * i) * 16, src + lane + 32 * i);
      }
    }
    // Scale rows: row r holds the group of unit r << unit_shift; 32 chunks of 8 scales per row.
    if (tid < p.scale_rows * 32) {
      const int r = tid / 32, ch = tid % 32;
      const int s_strip = cg * kSwapStrips + ch / 8;
      if (s_strip < p.strips) {
        const int grp = min((kb * kSwapK + (r << p.unit_shift) * 16) / p.group, p.num_groups - 1);
        cp_async16(smem_u32(base + Sz::kWBytes + Sz::kABytes + r * kSwapCols * 2 + ch * 16),
                   s_g + int64_t(grp) * p.n_pad + cg * kSwapCols + ch * 8);
      }
    }
  };
  auto issue_a = [&](int stage) {
    const int tile = a_tile, kb = a_kb;
    if (++a_kb == KB) a_kb = 0, ++a_tile;
    const int m0 = (tile % p.m_tiles) * NT;
    const uint32_t dst = smem_u32(smem + stage * Sz::kStageBytes + Sz::kWBytes);
    // NT rows x 8 chunks of 8 elements; chunk c of row r lands at c ^ (r & 7) (ldmatrix without bank conflicts).
#pragma unroll
    for (int i_ = 0; i_ < NT * 8 / kSwapThreads; ++i_) {
      const int i = tid + i_ * kSwapThreads;
      const int r = i / 8, ch = i % 8;
      const int gm = m0 + r, gk = kb * kSwapK + ch * 8;
      const bool ok = gm < p.m && gk < p.k;  // k % 8 == 0: a chunk is all in or all out
      cp_async16_zfill(dst + (r * 8 + (ch ^ (r & 7))) * 16, ok ? a_g + int64_t(gm) * p.k + gk : a_g, ok ? 16 : 0);
    }
  };

  float acc[4][kTT][4];
#pragma unroll
  for (int q = 0; q < 4; ++q)
#pragma unroll
    for (int i = 0; i < kTT; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[q][i][e] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s)
    if (s < n_iters) issue_w(s);
  asm volatile("griddepcontrol.wait;" ::: "memory");
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_iters) issue_a(s);
    cp_async_commit();
  }

  T* c_g = static_cast<T*>(p.c);
  int seg_begin = 0;
  int cur_tile = it_begin / KB, cur_kb = it_begin % KB;
  int stage = 0, ld_stage = kStages - 1;
  for (int it = 0; it < n_iters; ++it) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage `it` is visible; everyone is done with the stage refilled next
    if (it + kStages - 1 < n_iters) {
      issue_w(ld_stage);
      issue_a(ld_stage);
    }
    cp_async_commit();
    if (++ld_stage == kStages) ld_stage = 0;
    const unsigned char* base = smem + stage * Sz::kStageBytes;
    if (++stage == kStages) stage = 0;

    const int cg = cur_tile / p.m_tiles;
    const int strip = cg * kSwapStrips + warp;
    const bool active = strip < p.strips;  // the last column group may hold only 2 strips (n_pad % 256 == 128)
    if (active) {
      const uint4* w_s = reinterpret_cast<const uint4*>(base + warp * Sz::kWarpWBytes);
      const uint32_t a_s = smem_u32(base + Sz::kWBytes);
      const uint4* s_s = reinterpret_cast<const uint4*>(base + Sz::kWBytes + Sz::kABytes);
#pragma unroll
      for (int u = 0; u < kSwapK / 16; ++u) {
        // B fragments: token tiles 2 i2 and 2 i2 + 1 from one ldmatrix.x4 (matrices: tile 2 i2 k 0-7, k 8-15,
        // tile 2 i2 + 1 k 0-7, k 8-15; lane L addresses row L % 8 of matrix L / 8).
        uint32_t bfr[kTT][2];
#pragma unroll
        for (int i2 = 0; i2 < NT / 16; ++i2) {
          const int mi = lane >> 3;
          const int row = 16 * i2 + 8 * (mi >> 1) + (lane & 7), ch = 2 * u + (mi & 1);
          uint32_t r[4];
          ldmatrix_x4(r, a_s + (row * 8 + (ch ^ (row & 7))) * 16);
          bfr[2 * i2][0] = r[0];
          bfr[2 * i2][1] = r[1];
          bfr[2 * i2 + 1][0] = r[2];
          bfr[2 * i2 + 1][1] = r[3];
        }
        uint4 wq[kLaneU4];
#pragma unroll
        for (int c = 0; c < kLaneU4; ++c) wq[c] = w_s[(u * 32 + lane) * kLaneU4 + c];
        const uint4 s4 = s_s[((u >> p.unit_shift) * kSwapCols + warp * 64 + g * 8) / 8];
        const uint32_t s_words[4] = {s4.x, s4.y, s4.z, s4.w};
        const uint32_t* words = reinterpret_cast<const uint32_t*>(wq);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          uint32_t b[4];
          if constexpr (BITS == 4) {
            dequant_int4<T>(words[q], b);
          } else {
            dequant_int8<T>(words[2 * q], words[2 * q + 1], b);
          }
          const T2 sc2 = as_t2<T2>(s_words[q]);
          const T2 s0 = Tr::low2(sc2), s1 = Tr::high2(sc2);
          const uint32_t af[4] = {as_u32(__hmul2(as_t2<T2>(b[0]), s0)), as_u32(__hmul2(as_t2<T2>(b[2]), s1)),
                                  as_u32(__hmul2(as_t2<T2>(b[1]), s0)), as_u32(__hmul2(as_t2<T2>(b[3]), s1))};
#pragma unroll
          for (int i = 0; i < kTT; ++i) mma_16816<T>(acc[q][i], af, bfr[i][0], bfr[i][1]);
        }
      }
    }

    // End of this block's share of a tile: store or hand on (block-uniform condition).
    const int tile = cur_tile;
    const bool tile_done = ++cur_kb == KB;
    if (tile_done) cur_kb = 0, ++cur_tile;
    if (!tile_done && it != n_iters - 1) continue;
    const int m0 = (tile % p.m_tiles) * NT;
    const int covered = it - seg_begin + 1;
    seg_begin = it + 1;
    // This lane's fragment positions: columns col_base + 16 q + 8 h, tokens tok_base + 8 i (+1). Offsets from
    // two base pointers stay 32-bit (n * 64 and m * 256 fit), so the address arithmetic costs few registers.
    const int col_base = strip * 64 + g, tok_base = m0 + 2 * t;
    float* ws_b = p.ws + int64_t(col_base) * p.m + tok_base;  // transposed workspace: [col][tok]
    T* c_b = c_g + int64_t(tok_base) * p.n + col_base;
    auto in_range = [&](int q, int i, int h) { return col_base + 16 * q + 8 * h < p.n && tok_base + 8 * i < p.m; };
    const bool pairs = (p.m & 1) == 0;  // float2 workspace accesses need col * m + tok even (tok is even)
    if (covered != KB) {
      if (active) {
#pragma unroll
        for (int q = 0; q < 4; ++q)
#pragma unroll
          for (int i = 0; i < kTT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              if (!in_range(q, i, h)) continue;
              float* dst = ws_b + (16 * q + 8 * h) * p.m + 8 * i;
              if (pairs) {
                atomicAdd(reinterpret_cast<float2*>(dst), make_float2(acc[q][i][2 * h], acc[q][i][2 * h + 1]));
              } else {
                atomicAdd(dst, acc[q][i][2 * h]);
                if (tok_base + 8 * i + 1 < p.m) atomicAdd(dst + 1, acc[q][i][2 * h + 1]);
              }
            }
      }
      // Handed on: the accumulators restart from zero (the last block reloads the tile's sums into them). Zeroing
      // here, not later, ends their live range at the atomics (keeping them live cost ~50 spilled registers).
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int i = 0; i < kTT; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[q][i][e] = 0.f;
      __threadfence();
      __syncthreads();
      int* counter = p.counters + tile;
      if (tid == 0) s_is_last = (atomicAdd(counter, covered) + covered == KB);
      __syncthreads();
      const bool last = s_is_last;
      __syncthreads();  // s_is_last is reused by the next tile
      if (!last) continue;
      // The last block of the tile: every warp reads back the finished sums of its own fragment positions, a
      // slice at a time (its loads independent: one L2 round trip per slice, not one per element), and clears
      // them.
      __threadfence();  // everyone else's partial sums are visible once their counts are
      if (active) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
#pragma unroll
          for (int i = 0; i < kTT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              if (!in_range(q, i, h)) continue;
              const float* src = ws_b + (16 * q + 8 * h) * p.m + 8 * i;
              if (pairs) {
                const float2 v = __ldcg(reinterpret_cast<const float2*>(src));
                acc[q][i][2 * h] = v.x, acc[q][i][2 * h + 1] = v.y;
              } else {
                acc[q][i][2 * h] = __ldcg(src);
                if (tok_base + 8 * i + 1 < p.m) acc[q][i][2 * h + 1] = __ldcg(src + 1);
              }
            }
#pragma unroll
          for (int i = 0; i < kTT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              if (!in_range(q, i, h)) continue;
              float* dst = ws_b + (16 * q + 8 * h) * p.m + 8 * i;
              if (pairs) {
                __stcg(reinterpret_cast<float2*>(dst), make_float2(0.f, 0.f));
              } else {
                __stcg(dst, 0.f);
                if (tok_base + 8 * i + 1 < p.m) __stcg(dst + 1, 0.f);
              }
            }
        }
      }
      if (tid == 0) *counter = 0;
    }
    // The whole tile's sums are in this block's registers: store C, clear the accumulators.
    if (active) {
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int i = 0; i < kTT; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            if (in_range(q, i, h)) {
              T* dst = c_b + (8 * i) * p.n + 16 * q + 8 * h;
              dst[0] = Tr::from_float(acc[q][i][2 * h]);
              if (tok_base + 8 * i + 1 < p.m) dst[p.n] = Tr::from_float(acc[q][i][2 * h + 1]);
            }
            acc[q][i][2 * h] = acc[q][i][2 * h + 1] = 0.f;
          }
    }
  }
  cp_async_wait<0>();  // nothing may be in flight into shared memory when the block exits
}

template <int BITS, typename T, int NT>
cudaError_t swap_smem_attr() {
  static const cudaError_t e = cudaFuncSetAttribute(gemm_swap_kernel<BITS, T, NT>,
                                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    SwapSizes<BITS, NT>::kSmemBytes);
  return e;
}

template <int BITS, typename T, int NT>
cudaError_t launch_gemm_swap(const SwapParams& p, int blocks, bool pdl, cudaStream_t stream) {
  if (const cudaError_t e = swap_smem_attr<BITS, T, NT>(); e != cudaSuccess) return e;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(blocks), 1, 1);
  cfg.blockDim = dim3(kSwapThreads, 1, 1);
  cfg.dynamicSmemBytes = size_t(SwapSizes<BITS, NT>::kSmemBytes);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, gemm_swap_kernel<BITS, T, NT>, p);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

template <int BITS, typename T, int NT>
int gemm_swap_blocks_per_sm() {
  static std::atomic<int> cache{0};
  int blocks = cache.load(std::memory_order_relaxed);
  if (blocks == 0) {
    if (swap_smem_attr<BITS, T, NT>() != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gemm_swap_kernel<BITS, T, NT>, kSwapThreads,
                                                      SwapSizes<BITS, NT>::kSmemBytes) != cudaSuccess) {
      (void)cudaGetLastError();
      blocks = 1;
    }
    blocks = blocks > 0 ? blocks : 1;
    cache.store(blocks, std::memory_order_relaxed);
  }
  return blocks;
}

#define RTNQ_SWAP_INSTANCE(PREFIX, BITS, T, NT)                                                          \
  PREFIX template cudaError_t launch_gemm_swap<BITS, T, NT>(const SwapParams&, int, bool, cudaStream_t); \
  PREFIX template int gemm_swap_blocks_per_sm<BITS, T, NT>();

#define RTNQ_SWAP_INSTANCES_FOR(PREFIX, T) \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 16)     \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 32)     \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 64)     \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 16)     \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 32)     \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 64)

}  // namespace rtnq::cuda::detail
