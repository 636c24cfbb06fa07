// The strip kernel: the fused dequantize-and-multiply for m <= 16 (token tiles of 8 or 16) on linears whose
// 64-column strips come out at about one block per SM - one block per strip, or a cluster of two (Llama-3 8B o and
// down: 64 strips x 2; 8B qkv: 96 strips, 70B o and down: 128, one block each). H100, m = 1, same run: 8B o 5.2 vs
// 6.2 us, down 11.9 vs 14.5, qkv 6.9 vs 8.0, 70B o 12.6 vs 15.8 in the swapped-operand kernel (docs/perf-notes.md,
// thirteenth session).
//
// Why a third small-m kernel. At m <= 16 a call is memory-bound only while every SM streams: the swapped-operand
// kernel (gemm-swap-kernel.cuh) gives a block 256 columns, so these linears have 16-32 tiles, and their k is split
// over clusters of 8-16 blocks, which the hardware places a GPC at a time up to the blocks-per-SM cap: some SMs run
// 3 blocks, some 1, ~30 none, and the call ends with the most loaded SMs ~2 us after the rest (8B down at m = 1:
// 12.7 vs 8.8 us to the hand-off; docs/perf-notes.md, twelfth session). No cluster size and cap spreads them
// evenly on an H100 (its GPCs do not split into enough groups of 8). Here a block owns one 64-column strip, so the
// strips themselves fill the card; the k split that a strip needs beyond its block is at most a cluster of two,
// which a GPC always holds side by side.
//
// Inside a block: 8 warps split the block's k range into 8 contiguous pieces, each warp with its own cp.async ring
// (weights, activations, scales; no block barrier in the main loop, only cp.async.wait_group and __syncwarp) and
// its own mma.sync m16n8k16 tiles: the dequantized weights are the 16-row A operand (a lane's word s of a unit is
// the A fragment of slice s, as in the swapped-operand kernel: see repack-layout.h and the top of that file), the
// token rows the B operand, one or two n8 tiles (ldmatrix from an XOR-swizzled tile). The integer weights q go
// into the MMA unscaled (exact in FP16 and BF16) and each scale group's partial sums are scaled in fp32 at the
// group's end (deferred scales: groups of 64 and up, or per-channel). At the end the 8 warps' sums meet in shared memory, and a
// cluster's second block sends its sums into the first one's shared memory (st.async), which stores the strip.
// Programmatic dependent launch as in the other fused kernels: the weights and scales of the first stages are
// requested before griddepcontrol.wait, the activations after it.
#pragma once

#include <atomic>

#include "cuda/async-copy.cuh"
#include "cuda/gemm-kernel.cuh"
#include "cuda/launch-util.h"

namespace rtnq::cuda::detail {

inline constexpr int kStripWarps = 8;
inline constexpr int kStripThreads = kStripWarps * 32;
inline constexpr int kStripMaxTokens = 16;  // token tiles of 8 (m <= 8) or 16 (one or two n8 tiles of the MMA)
inline constexpr int kStripK = 64;      // k per stage (4 units of 16)
inline constexpr int kStripMaxSplit = 2;
inline constexpr int kStripRedStride = 68;  // fp32 row of 64 columns + 4: lane (g, t) writes rows 2t, 2t + 1 in 32 banks

struct StripParams {
  const void* a;
  const uint4* w;       // repacked words
  const void* scales;   // [G][n_pad]
  void* c;
  int m, n, k, n_pad;
  int ku;               // k units (16 deep) per strip: k_pad / 16
  int kbs;              // k batches (64 deep) per strip: k_pad / 64
  int num_groups;
  int group_batches;    // batches per scale group: group / 64 (per-channel: kbs)
  int csplit;           // blocks per strip: 1, or 2 (a cluster)
};

template <int BITS, int NT>
struct StripSizes {
  static_assert(NT == 8 || NT == 16, "one or two n8 token tiles");
  static constexpr int kLaneU4 = BITS / 4;                          // 16-byte chunks per lane per unit
  static constexpr int kWBytes = (kStripK / 16) * 32 * kLaneU4 * 16;  // one batch of a strip: 2 KB INT4, 4 KB INT8
  static constexpr int kABytes = NT * kStripK * 2;                   // NT tokens x 64 k, 128 bytes a row
  static constexpr int kSBytes = 64 * 2;                             // the strip's scale row of the batch's group
  static constexpr int kStageBytes = kWBytes + kABytes + kSBytes;
  static constexpr int kStages = 4;
  static constexpr int kWarpBytes = kStages * kStageBytes;
  // Past the rings: a cluster's rank 0 receives rank 1's sums here (NT tokens x 64 columns), then its mbarrier.
  static constexpr int kRecvBytes = NT * 64 * 4 + 16;
  static constexpr int kSmemBytes = kStripWarps * kWarpBytes + kRecvBytes;
  // The end of the block reuses the rings for the 8 warps' partial sums.
  static constexpr int kRedBytes = kStripWarps * NT * kStripRedStride * 4;
  static_assert(kRedBytes <= kStripWarps * kWarpBytes, "the reduction fits the spent rings");
  static_assert(kWBytes % 128 == 0 && kStageBytes % 128 == 0 && kWarpBytes % 128 == 0,
                "every activation tile starts on a 128-byte boundary (its rows are the swizzle's 128-byte rows)");
  static_assert(kSmemBytes <= 227 * 1024, "fits the opt-in shared memory of sm_90");
};

template <int BITS, typename T, int NT>
__global__ void __launch_bounds__(kStripThreads, 1) gemm_strip_kernel(StripParams p) {
  using Sz = StripSizes<BITS, NT>;
  constexpr int kTT = NT / 8;  // n8 token tiles
  using Tr = ActTraits<T>;
  constexpr int kLaneU4 = Sz::kLaneU4, kStages = Sz::kStages, kAhead = kStages - 1;
  extern __shared__ __align__(16) unsigned char smem[];

  // A cluster of two hands rank 1's sums to rank 0 by st.async into rank 0's receive area, counted on this mbarrier
  // (armed for the bytes before the cluster's first barrier; rank 1 waits at that barrier only after its main
  // loop). Rank 0 stores the strip; there is no cluster barrier at the end, since rank 0 reads nothing remote, and
  // rank 1 leaves once it has sent. H100, m = 1, A/B/A/B in one call: 8B o 5.2 vs 5.8 us, down 11.9 vs 12.4 against
  // a pull through both blocks' shared memory between two cluster barriers (docs/perf-notes.md, thirteenth session).
  // The mbarrier lives in the dynamic shared memory: a static __shared__ variable moves the dynamic base off its
  // alignment, and that made every shape slower, up to 14% (70B down 46.8 vs 41.1 us), clusters or not.
  uint64_t& s_recv_bar = *reinterpret_cast<uint64_t*>(smem + Sz::kSmemBytes - 16);

  asm volatile("griddepcontrol.launch_dependents;");
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int strip = int(blockIdx.x) / p.csplit, rank = int(blockIdx.x) % p.csplit;
  if (p.csplit == 2) {
    if (rank == 0 && tid == 0) {
      mbar_init(smem_u32(&s_recv_bar), 1);
      mbar_init_fence();
      mbar_arrive_expect_tx(smem_u32(&s_recv_bar), uint32_t(p.m * 64 * 4));
    }
    asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
  }
  // This block's batches of the strip, then this warp's contiguous piece of them (possibly empty).
  const int b_lo = rank * p.kbs / p.csplit, b_hi = (rank + 1) * p.kbs / p.csplit;
  const int w_lo = b_lo + warp * (b_hi - b_lo) / kStripWarps;
  const int n_it = b_lo + (warp + 1) * (b_hi - b_lo) / kStripWarps - w_lo;

  uint64_t policy;  // each weight is read once (one tile of tokens)
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  const T* a_g = static_cast<const T*>(p.a);
  const T* s_g = static_cast<const T*>(p.scales);
  const uint4* w_g = p.w + int64_t(strip) * p.ku * 32 * kLaneU4 + lane;
  const uint32_t ring = smem_u32(smem) + warp * Sz::kWarpBytes;
  auto stage_at = [&](int s) { return ring + s * Sz::kStageBytes; };

  // Token rows past m stay zero: written once here, never copied into.
  for (int i = lane; i < kStages * NT * 8; i += 32) {
    const int s = i / (NT * 8), row = (i / 8) % NT;
    if (row >= p.m)
      *reinterpret_cast<uint4*>(smem + warp * Sz::kWarpBytes + s * Sz::kStageBytes + Sz::kWBytes + (i % (NT * 8)) * 16) =
          make_uint4(0, 0, 0, 0);
  }
  // The loader's next batch and its scale group, moved by a counter (no division per stage).
  struct Loader {
    int b, grp, pos;  // batch, its group, batches of the group before it
  };
  Loader ld{w_lo, w_lo / p.group_batches, w_lo % p.group_batches};
  auto next = [&](Loader& l) {
    ++l.b;
    if (++l.pos == p.group_batches) l.pos = 0, ++l.grp;
  };
  // Weights and the scale row of the loader's batch into stage s: lanes 0-7 copy the strip's 128 scale bytes of
  // the group (the last group's row past k, where the weights are zero).
  auto issue_w = [&](const Loader& l, int s) {
    const uint32_t dst = stage_at(s);
    const uint4* src = w_g + int64_t(l.b) * (Sz::kWBytes / 16);  // (w_g holds + lane)
#pragma unroll
    for (int i = 0; i < Sz::kWBytes / 16 / 32; ++i)
      cp_async16_hint(dst + (32 * i + lane) * 16, src + 32 * i, policy);
    if (lane < 8) {
      const int grp = min(l.grp, p.num_groups - 1);
      cp_async16(dst + Sz::kWBytes + Sz::kABytes + lane * 16, s_g + int64_t(grp) * p.n_pad + strip * 64 + lane * 8);
    }
  };
  // Activations of batch b (token rows below m; chunks past k zero-filled): chunk c of row r at c ^ (r & 7).
  auto issue_a = [&](int b, int s) {
    const uint32_t dst = stage_at(s) + Sz::kWBytes;
#pragma unroll
    for (int i = 0; i < NT / 4; ++i) {
      const int c = lane + 32 * i, row = c >> 3, ch = c & 7;
      if (row < p.m) {
        const int kk = b * kStripK + ch * 8;
        const bool ok = kk < p.k;  // k % 8 == 0: a chunk is all in or all out
        cp_async16_zfill(dst + (row * 8 + (ch ^ (row & 7))) * 16, ok ? a_g + int64_t(row) * p.k + kk : a_g,
                         ok ? 16 : 0);
      }
    }
  };

  float acc[4][kTT][4], pacc[4][kTT][4];  // slice, token tile, fragment
#pragma unroll
  for (int q = 0; q < 4; ++q)
#pragma unroll
    for (int i = 0; i < kTT; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[q][i][e] = pacc[q][i][e] = 0.f;

  int g_pos = ld.pos;  // batches of the current group already multiplied
#pragma unroll
  for (int s = 0; s < kAhead; ++s)
    if (s < n_it) issue_w(ld, s), next(ld);
  asm volatile("griddepcontrol.wait;" ::: "memory");
#pragma unroll
  for (int s = 0; s < kAhead; ++s) {
    if (s < n_it) issue_a(w_lo + s, s);
    cp_async_commit();
  }

  for (int it = 0; it < n_it; ++it) {
    cp_async_wait<kAhead - 1>();
    __syncwarp();  // every lane's copies of stage `it` are visible; every lane is done with the stage refilled next
    const int s = it % kStages;
    if (it + kAhead < n_it) {
      const int sf = (it + kAhead) % kStages;
      issue_w(ld, sf);
      issue_a(ld.b, sf);
      next(ld);
    }
    cp_async_commit();
    const unsigned char* base = smem + warp * Sz::kWarpBytes + s * Sz::kStageBytes;
    const uint4* w_s = reinterpret_cast<const uint4*>(base);
    const uint32_t a_s = stage_at(s) + Sz::kWBytes;
#pragma unroll
    for (int u2 = 0; u2 < kStripK / 32; ++u2) {
      // B fragments of units 2 u2 and 2 u2 + 1 for token tile i (matrices: k 0-7 and 8-15 of each; lane L
      // addresses row L % 8 of matrix L / 8).
      uint32_t bf[kTT][4];
#pragma unroll
      for (int i = 0; i < kTT; ++i) {
        const int row = 8 * i + (lane & 7), ch = 4 * u2 + (lane >> 3);
        ldmatrix_x4(bf[i], a_s + (row * 8 + (ch ^ (lane & 7))) * 16);
      }
#pragma unroll
      for (int uu = 0; uu < 2; ++uu) {
        const int u = 2 * u2 + uu;
        uint4 raw[kLaneU4];
#pragma unroll
        for (int c = 0; c < kLaneU4; ++c) raw[c] = w_s[(u * 32 + lane) * kLaneU4 + c];
        const uint32_t* words = reinterpret_cast<const uint32_t*>(raw);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          uint32_t b[4];
          dequant_slice<BITS, T>(words, q, b);
          const uint32_t af[4] = {b[0], b[2], b[1], b[3]};
#pragma unroll
          for (int i = 0; i < kTT; ++i) mma_16816<T>(pacc[q][i], af, bf[i][2 * uu], bf[i][2 * uu + 1]);
        }
      }
    }
    // The group's (or this warp's piece's) last batch: its partial sums join the accumulators, scaled; the next
    // group's start from zero.
    if (++g_pos == p.group_batches || it == n_it - 1) {
      g_pos = 0;
      fold_group_scales<Tr>(acc, pacc, *reinterpret_cast<const uint4*>(base + Sz::kWBytes + Sz::kABytes + g * 16));
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int i = 0; i < kTT; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) pacc[q][i][e] = 0.f;
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with its ring: it becomes the reduction space

  // The warps' sums: red[warp][token][column]; then each thread adds up 4 adjacent columns of one token (a quad).
  float* red = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int q = 0; q < 4; ++q)
#pragma unroll
    for (int i = 0; i < kTT; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float* r0 = red + (warp * NT + 8 * i + 2 * t) * kStripRedStride + 16 * q + 8 * h + g;
        r0[0] = acc[q][i][2 * h];
        r0[kStripRedStride] = acc[q][i][2 * h + 1];
      }
  __syncthreads();
  const int quad = tid, tok = quad / 16, col0 = (quad % 16) * 4;  // m <= 16: at most 256 quads, one a thread
  static_assert(NT * 16 <= kStripThreads, "one quad a thread");
  if (quad >= p.m * 16) return;  // (a thread that arrived at the cluster barrier and left does not hold it up)
  float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int w = 0; w < kStripWarps; ++w) {
    const float4 v =
        *reinterpret_cast<const float4*>(red + (w * NT + tok) * kStripRedStride + col0);
    sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
  }
  float* recv = reinterpret_cast<float*>(smem + Sz::kSmemBytes - Sz::kRecvBytes) + quad * 4;
  if (p.csplit == 2) {
    // Rank 0's mbarrier is armed. (Not .aligned: threads past the last quad have left.)
    asm volatile("barrier.cluster.wait.acquire;" ::: "memory");
    if (rank == 1) {
      uint32_t r_dst, r_bar;
      asm volatile("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(r_dst) : "r"(smem_u32(recv)));
      asm volatile("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(r_bar) : "r"(smem_u32(&s_recv_bar)));
      asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];"
                   ::"r"(r_dst), "f"(sum.x), "f"(sum.y), "f"(sum.z), "f"(sum.w), "r"(r_bar) : "memory");
      return;
    }
    mbar_wait(smem_u32(&s_recv_bar), 0);
    const float4 v = *reinterpret_cast<const float4*>(recv);
    sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;  // fixed order: rank 0's sums, then rank 1's
  }
  T* c_g = static_cast<T*>(p.c) + int64_t(tok) * p.n + strip * 64 + col0;
  const float vals[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
  for (int e = 0; e < 4; ++e)
    if (strip * 64 + col0 + e < p.n) c_g[e] = Tr::from_float(vals[e]);
}

template <int BITS, typename T, int NT>
cudaError_t strip_smem_attr() {
  static const cudaError_t e = [] {
    cudaError_t r = cudaFuncSetAttribute(gemm_strip_kernel<BITS, T, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         padded_smem_bytes(StripSizes<BITS, NT>::kSmemBytes, 1));
    if (r == cudaSuccess) r = cudaFuncSetAttribute(gemm_strip_kernel<BITS, T, NT>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    return r;
  }();
  return e;
}

// per_sm: pad the shared memory so that at most that many blocks share an SM (0: unpadded).
template <int BITS, typename T, int NT>
cudaError_t launch_gemm_strip(const StripParams& p, int blocks, bool pdl, int per_sm, cudaStream_t stream) {
  if (const cudaError_t e = strip_smem_attr<BITS, T, NT>(); e != cudaSuccess) return e;
  const LaunchConfig lc(blocks, kStripThreads, padded_smem_bytes(StripSizes<BITS, NT>::kSmemBytes, per_sm), stream,
                        pdl, p.csplit);
  return launch_with(gemm_strip_kernel<BITS, T, NT>, lc, p);
}

// How many clusters of `size` blocks the card holds at once with at most `per_sm` blocks to an SM (0: as many as
// fit); 0 if none or the query fails. Cached.
template <int BITS, typename T, int NT>
int gemm_strip_max_clusters(int size, int per_sm) {
  static std::atomic<int> cache[kStripMaxSplit + 1][3] = {};
  if (size < 2 || size > kStripMaxSplit || per_sm < 0 || per_sm > 2) return 0;
  int n = cache[size][per_sm].load(std::memory_order_relaxed);
  if (n == 0) {
    if (strip_smem_attr<BITS, T, NT>() == cudaSuccess)
      n = max_active_clusters(gemm_strip_kernel<BITS, T, NT>, size, kStripThreads,
                              padded_smem_bytes(StripSizes<BITS, NT>::kSmemBytes, per_sm));
    else
      (void)cudaGetLastError();
    n = n > 0 ? n : -1;  // -1: asked, none
    cache[size][per_sm].store(n, std::memory_order_relaxed);
  }
  return n > 0 ? n : 0;
}

#define RTNQ_STRIP_INSTANCE(PREFIX, BITS, T, NT)                                                                  \
  PREFIX template cudaError_t launch_gemm_strip<BITS, T, NT>(const StripParams&, int, bool, int, cudaStream_t); \
  PREFIX template int gemm_strip_max_clusters<BITS, T, NT>(int, int);
#define RTNQ_STRIP_INSTANCES_FOR(PREFIX, T) \
  RTNQ_STRIP_INSTANCE(PREFIX, 4, T, 8)      \
  RTNQ_STRIP_INSTANCE(PREFIX, 8, T, 8)      \
  RTNQ_STRIP_INSTANCE(PREFIX, 4, T, 16)     \
  RTNQ_STRIP_INSTANCE(PREFIX, 8, T, 16)

}  // namespace rtnq::cuda::detail
