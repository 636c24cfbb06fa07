// The decode kernel: the fused dequantize-and-multiply for m <= 16 (one 16-row mma tile of A), built for the
// memory roofline rather than for reuse of the weight tile.
//
// Why a second kernel. The tiled kernel (gemm-kernel.cuh) moves each 128-deep k tile through a block-wide
// cp.async ring: every tile costs a wait, a __syncthreads and a round of shared-memory traffic, ~1.9 us per 8 KB
// INT4 tile per block on an H100, which caps INT4 at ~60% of the bandwidth. At m <= 16 nothing in a weight tile
// is reused across warps, so the staging buys nothing. Here every warp streams its own contiguous slice of the
// repacked weight on its own - the repacked layout (repack-layout.h) already hands each lane exactly the 16 bytes
// (INT4; 32 for INT8) that form its B fragments of one 16 x 64 unit - and never waits for another warp: no
// block-wide barrier anywhere.
//
// Work split. The repacked weight is one stream of units in (strip, k unit) order, k fastest. Units are taken in
// batches of kU (kU * 16 divides 128, so a batch never straddles a strip), and the list of batches is cut into
// one contiguous stripe per warp of the grid (grid = the warps the card holds at once, or fewer when the shape
// is small). Each warp runs its own 4-stage cp.async ring in its own slice of shared memory (weights with an L2
// evict-first hint, the rows < m of A, the scale rows), synchronised by __syncwarp alone, so three batches are
// in flight per warp without holding registers for them. Where its stripe leaves a strip, it hands the strip's
// partial sums on: a warp that covered the whole strip stores C; otherwise the partial sums go into the fp32
// workspace with vector atomics (float4 where n % 4 == 0), each warp adds its unit count to the strip's arrival
// counter, and the warp that completes the count converts, stores C and zeroes the workspace again.
//
// Programmatic dependent launch: the weights and scales of the first batch are requested before
// griddepcontrol.wait (they never depend on an earlier kernel), the activations and the workspace only after
// it, so with the launch attribute set the prologue overlaps the previous kernel's tail.
#pragma once

#include <atomic>

#include "cuda/gemm-kernel.cuh"
#include "cuda/launch-util.h"

namespace rtnq::cuda::detail {

inline constexpr int kDecThreads = 128;  // 4 independent warps per block
inline constexpr int kDecodeMaxM = 16;   // rows of A one mma tile holds
inline constexpr int kDecodeNarrowMaxM = 4;  // the plain split-k hand-off up to this m (see kWide below)

struct DecodeParams {
  const void* a;
  const uint4* w;          // repacked words
  const void* scales;      // [G][n_pad]
  void* c;
  float* ws;               // [m][n] fp32 partial sums (zero on entry and exit)
  int* counters;           // per strip: k units arrived (zero on entry and exit)
  int m, n, k, n_pad;
  int num_groups;
  int group;               // effective group length (k_pad for per-channel)
  int ku;                  // k units (16 deep) per strip: k_pad / 16
  int batches;             // strips * ku / kU
  int align;               // stripes start on multiples of this many batches (batches per strip: no split-k)
};

template <int BITS>
struct DecodeSizes {
  static constexpr int kLaneU4 = BITS / 4;           // 16-byte words per lane per unit
  static constexpr int kU = BITS == 4 ? 4 : 2;       // units per batch: 2 KB of weights per warp either way
  static constexpr int kWBytes = kU * 32 * kLaneU4 * 16;
  static constexpr int kStages = 4;                  // per-warp ring: 3 batches in flight while one is used
  static_assert(kWBytes == 2048, "one batch is 2 KB of weights");
  static_assert(128 % (kU * 16) == 0, "a batch never straddles a strip (k_pad is a multiple of 128)");
  // Per-warp stage: weights, then A rows < m (kU units x m rows x 16 k), then the scale rows (one, or one per
  // unit when the group is shorter than a batch).
  __host__ __device__ static constexpr int a_bytes(int m) { return kU * m * 32; }
  __host__ __device__ static constexpr int s_bytes(bool unit_scales) { return (unit_scales ? kU : 1) * 128; }
  __host__ __device__ static constexpr int stage_bytes(int m, bool unit_scales) { return kWBytes + a_bytes(m) + s_bytes(unit_scales); }
  __host__ __device__ static constexpr int smem_bytes(int m, bool unit_scales) {
    return (kDecThreads / 32) * kStages * stage_bytes(m, unit_scales);
  }
  __host__ __device__ static constexpr bool unit_scales(int group) { return group < kU * 16; }
};

// kWide (chosen for m > kDecodeNarrowMaxM): the split-k hand-off with float4 atomics and a final pass of
// independent float4 loads, which at m = 16 took the 8B layer from 124 to 100 us. At small m the plain version
// is kept: the wide one changed the register allocation of the streaming loop (72 instead of 78-90 registers)
// and was ~7% slower on 70B shapes at m = 1 (A/B on one H100, docs/perf-notes.md).
// Six blocks per SM (<= 85 registers): shared memory allows six at m <= 4, and the cap moved the INT4 BF16 kernel
// from 90 registers (5 blocks) to 77-80 without spills. A/B on one H100 (run 13): 8B layer m=1 70.4 -> 69.6 us,
// m=16 99.3 -> 94 us, 70B gate_up m=16 157 -> 139 us, INT8 8B m=1 101.8 -> 99.3 us; 70B gate_up m=1 107.3 -> 110.
template <int BITS, typename T, bool kWide>
__global__ void __launch_bounds__(kDecThreads, 6) gemm_decode_kernel(DecodeParams p) {
  using Sz = DecodeSizes<BITS>;
  using Tr = ActTraits<T>;
  constexpr int kU = Sz::kU, kLaneU4 = Sz::kLaneU4, kStages = Sz::kStages;
  constexpr int kWarps = kDecThreads / 32;
  extern __shared__ __align__(16) unsigned char smem[];

  // Let the next kernel in the stream be scheduled as soon as SMs free up (it waits for our completion itself
  // before it touches anything we write).
  asm volatile("griddepcontrol.launch_dependents;");

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;  // mma groupID / threadID_in_group
  const int warps = gridDim.x * kWarps;
  const int wid = blockIdx.x * kWarps + warp;
  const int pieces = p.batches / p.align;
  const int b_begin = int(int64_t(wid) * pieces / warps) * p.align;
  const int b_end = int(int64_t(wid + 1) * pieces / warps) * p.align;
  const int bps = p.ku / kU;  // batches per strip
  // Units inside a batch share one scale row when the group spans the batch (64 or more for INT4, 32 for INT8);
  // smaller groups bring a scale row per unit.
  const bool unit_scales = Sz::unit_scales(p.group);
  const int stage_bytes = Sz::stage_bytes(p.m, unit_scales);
  unsigned char* ring = smem + warp * kStages * stage_bytes;
  const uint32_t ring_s = smem_u32(ring);

  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  const T* a_g = static_cast<const T*>(p.a);
  const T* s_g = static_cast<const T*>(p.scales);

  // Stage layout: [W: kU units x 32 lanes x 16*kLaneU4 B][A: kU units x m rows x 16 k][S: 1 or kU x 8 x 16 B].
  const int a_off = Sz::kWBytes, s_off = Sz::kWBytes + Sz::a_bytes(p.m);
  auto issue_w = [&](int b, int stage) {
    const uint32_t dst = ring_s + stage * stage_bytes;
    const uint4* src = p.w + int64_t(b) * (Sz::kWBytes / 16);  // a batch is 2 KB of the contiguous stream
#pragma unroll
    for (int i = 0; i < Sz::kWBytes / 16 / 32; ++i)
      cp_async16_hint(dst + (lane + 32 * i) * 16, src + lane + 32 * i, policy);
    const int strip = b / bps, kunit = (b % bps) * kU;
    if (lane < 8 * (unit_scales ? kU : 1)) {
      const int u = lane / 8, r = lane % 8;
      const int grp = min((kunit + u) * 16 / p.group, p.num_groups - 1);  // padding past k reuses the last group
      cp_async16(dst + s_off + lane * 16, s_g + int64_t(grp) * p.n_pad + strip * 64 + r * 8);
    }
  };
  auto issue_a = [&](int b, int stage) {
    const uint32_t dst = ring_s + stage * stage_bytes + a_off;
    const int k0 = (b % bps) * kU * 16;
    for (int i = lane; i < kU * p.m * 2; i += 32) {  // 16-byte chunks, in (unit, row, half) order
      const int u = i / (2 * p.m), rest = i % (2 * p.m), row = rest / 2, h = rest % 2;
      const int kk = k0 + u * 16 + h * 8;
      const bool ok = kk < p.k;  // k % 8 == 0: a chunk is all in or all out
      cp_async16_zfill(dst + i * 16, ok ? a_g + int64_t(row) * p.k + kk : a_g, ok ? 16 : 0);
    }
  };

  float acc[8][4];
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] = 0.f;

  // One strip's partial sums of this warp (units [.., covered)) -> C or the workspace.
  auto flush = [&](int strip, int covered) {
    const int col0 = strip * 64 + 2 * t;
    T* c_g = static_cast<T*>(p.c);
    if (covered == p.ku) {
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = g + (e >= 2 ? 8 : 0), col = col0 + j * 8 + (e & 1);
          if (row < p.m && col < p.n) c_g[int64_t(row) * p.n + col] = Tr::from_float(acc[j][e]);
        }
      return;
    }
    if (kWide && (p.n & 3) == 0) {
      // float4 atomics (half the atomic operations of float2): lanes t and t ^ 1 swap one pair per n8-tile pair,
      // so the even lane holds columns 2t..2t+3 of tile j and the odd lane columns 2t-2..2t+1 of tile j + 1.
      const bool odd = t & 1;
#pragma unroll
      for (int j = 0; j < 8; j += 2)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float s0 = odd ? acc[j][2 * h] : acc[j + 1][2 * h];
          const float s1 = odd ? acc[j][2 * h + 1] : acc[j + 1][2 * h + 1];
          const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1);
          const int row = g + 8 * h;
          const int col = strip * 64 + (odd ? (j + 1) * 8 + 2 * (t - 1) : j * 8 + 2 * t);
          const float4 v = odd ? make_float4(r0, r1, acc[j + 1][2 * h], acc[j + 1][2 * h + 1])
                               : make_float4(acc[j][2 * h], acc[j][2 * h + 1], r0, r1);
          if (row < p.m && col < p.n) atomicAdd(reinterpret_cast<float4*>(p.ws + int64_t(row) * p.n + col), v);
        }
    } else {
      const bool pairs = (p.n & 1) == 0;  // float2 atomics need 8-byte alignment of row * n + col
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = g + 8 * h, col = col0 + j * 8;
          if (row >= p.m || col >= p.n) continue;
          float* dst = p.ws + int64_t(row) * p.n + col;
          if (pairs) {
            atomicAdd(reinterpret_cast<float2*>(dst), make_float2(acc[j][2 * h], acc[j][2 * h + 1]));
          } else {
            atomicAdd(dst, acc[j][2 * h]);
            if (col + 1 < p.n) atomicAdd(dst + 1, acc[j][2 * h + 1]);
          }
        }
    }
    __threadfence();
    __syncwarp();
    int prev = 0;
    if (lane == 0) prev = atomicAdd(p.counters + strip, covered);
    prev = __shfl_sync(0xffffffffu, prev, 0);
    if (prev + covered != p.ku) return;
    __threadfence();  // everyone else's partial sums are visible once their counts are
    if (kWide && (p.n & 3) == 0) {
      // Four columns per lane and step, all loads of a lane independent: one L2 round trip, not m * 2.
      for (int i = lane; i < p.m * 16; i += 32) {
        const int row = i / 16, col = strip * 64 + (i % 16) * 4;
        if (col >= p.n) continue;
        float4* slot = reinterpret_cast<float4*>(p.ws + int64_t(row) * p.n + col);
        const float4 v = __ldcg(slot);
        T* dst = c_g + int64_t(row) * p.n + col;
        dst[0] = Tr::from_float(v.x);
        dst[1] = Tr::from_float(v.y);
        dst[2] = Tr::from_float(v.z);
        dst[3] = Tr::from_float(v.w);
        __stcg(slot, make_float4(0.f, 0.f, 0.f, 0.f));
      }
    } else {
      for (int i = lane; i < p.m * 64; i += 32) {
        const int row = i / 64, col = strip * 64 + i % 64;
        if (col >= p.n) continue;
        float* slot = p.ws + int64_t(row) * p.n + col;
        c_g[int64_t(row) * p.n + col] = Tr::from_float(__ldcg(slot));
        __stcg(slot, 0.f);
      }
    }
    if (lane == 0) p.counters[strip] = 0;
  };

  // Prologue: the weights and scales of the first kStages - 1 batches go out before griddepcontrol.wait;
  // everything after it may read what an earlier kernel in the stream wrote (A) or still uses (the workspace).
  // Group s holds A of batch s (group 0 also all the early weights): "group s complete" = batch s landed.
  const int n_b = max(b_end - b_begin, 0);
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s)
    if (s < n_b) issue_w(b_begin + s, s);
  asm volatile("griddepcontrol.wait;" ::: "memory");
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_b) issue_a(b_begin + s, s);
    cp_async_commit();
  }

  int seg_first = b_begin;
  int stage = 0;
  const bool row_lo = g < p.m, row_hi = g + 8 < p.m;
  for (int b = b_begin; b < b_end; ++b) {
    cp_async_wait<kStages - 2>();
    __syncwarp();  // every lane's copies of this stage are visible; all lanes are done with the stage refilled next
    {
      const int nb = b + kStages - 1, ns = (stage + kStages - 1) % kStages;
      if (nb < b_end) {
        issue_w(nb, ns);
        issue_a(nb, ns);
      }
      cp_async_commit();
    }
    const unsigned char* base = ring + stage * stage_bytes;
    if (++stage == kStages) stage = 0;
    const uint4* w_s = reinterpret_cast<const uint4*>(base);
    const unsigned char* a_s = base + a_off;
    const uint4* s_s = reinterpret_cast<const uint4*>(base + s_off);
#pragma unroll
    for (int i = 0; i < kU; ++i) {
      uint32_t af[4];
      // Row r of unit i sits at (i * m + r) * 32 bytes; rows >= m are not stored (they are zero).
      const unsigned char* a_u = a_s + i * p.m * 32 + t * 4;
      af[0] = row_lo ? *reinterpret_cast<const uint32_t*>(a_u + g * 32) : 0u;
      af[1] = row_hi ? *reinterpret_cast<const uint32_t*>(a_u + (g + 8) * 32) : 0u;
      af[2] = row_lo ? *reinterpret_cast<const uint32_t*>(a_u + g * 32 + 16) : 0u;
      af[3] = row_hi ? *reinterpret_cast<const uint32_t*>(a_u + (g + 8) * 32 + 16) : 0u;
      const uint4 s4 = s_s[(unit_scales ? i * 8 : 0) + g];
      const uint32_t s_words[4] = {s4.x, s4.y, s4.z, s4.w};
      uint4 wq[kLaneU4];
#pragma unroll
      for (int c = 0; c < kLaneU4; ++c) wq[c] = w_s[(i * 32 + lane) * kLaneU4 + c];
      const uint32_t* words = reinterpret_cast<const uint32_t*>(wq);
#pragma unroll
      for (int sl = 0; sl < 4; ++sl) {
        uint32_t bq[4];
        dequant_slice_scaled<BITS, T>(words, sl, s_words[sl], bq);
        mma_16816<T>(acc[2 * sl + 0], af, bq[0], bq[1]);
        mma_16816<T>(acc[2 * sl + 1], af, bq[2], bq[3]);
      }
    }
    if ((b + 1) % bps == 0 || b + 1 == b_end) {
      flush(b / bps, (b + 1 - seg_first) * kU);
      seg_first = b + 1;
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][e] = 0.f;
    }
  }
  cp_async_wait<0>();  // nothing may be in flight into shared memory when the warp exits
}

template <int BITS, typename T, bool kWide>
cudaError_t decode_smem_attr() {
  static const cudaError_t e = cudaFuncSetAttribute(gemm_decode_kernel<BITS, T, kWide>,
                                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    DecodeSizes<BITS>::smem_bytes(kDecodeMaxM, true));
  return e;
}

template <int BITS, typename T, bool kWide>
cudaError_t launch_gemm_decode(const DecodeParams& p, int blocks, bool pdl, cudaStream_t stream) {
  using Sz = DecodeSizes<BITS>;
  static_assert(Sz::smem_bytes(kDecodeMaxM, true) <= 227 * 1024, "fits the opt-in shared memory of sm_90");
  if (const cudaError_t e = decode_smem_attr<BITS, T, kWide>(); e != cudaSuccess) return e;
  const LaunchConfig lc(blocks, kDecThreads, Sz::smem_bytes(p.m, Sz::unit_scales(p.group)), stream, pdl, 1);
  return launch_with(gemm_decode_kernel<BITS, T, kWide>, lc, p);
}

// Blocks per SM for this m and scale-row mode (shared memory decides), cached per (m, mode). Atomic slots: host
// threads may launch concurrently, and they all compute the same value.
template <int BITS, typename T, bool kWide>
int gemm_decode_blocks_per_sm(int m, bool unit_scales) {
  static std::atomic<int> cache[kDecodeMaxM + 1][2] = {};
  std::atomic<int>& slot = cache[m][unit_scales ? 1 : 0];
  int blocks = slot.load(std::memory_order_relaxed);
  if (blocks == 0) {
    if (decode_smem_attr<BITS, T, kWide>() != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gemm_decode_kernel<BITS, T, kWide>, kDecThreads,
                                                      DecodeSizes<BITS>::smem_bytes(m, unit_scales)) != cudaSuccess) {
      (void)cudaGetLastError();
      blocks = 1;
    }
    blocks = blocks > 0 ? blocks : 1;
    slot.store(blocks, std::memory_order_relaxed);
  }
  return blocks;
}

#define RTNQ_DECODE_INSTANCE(PREFIX, BITS, T, WIDE)                                                           \
  PREFIX template cudaError_t launch_gemm_decode<BITS, T, WIDE>(const DecodeParams&, int, bool, cudaStream_t); \
  PREFIX template int gemm_decode_blocks_per_sm<BITS, T, WIDE>(int, bool);

#define RTNQ_DECODE_INSTANCES_FOR(PREFIX, T) \
  RTNQ_DECODE_INSTANCE(PREFIX, 4, T, false)  \
  RTNQ_DECODE_INSTANCE(PREFIX, 4, T, true)   \
  RTNQ_DECODE_INSTANCE(PREFIX, 8, T, false)  \
  RTNQ_DECODE_INSTANCE(PREFIX, 8, T, true)

}  // namespace rtnq::cuda::detail
