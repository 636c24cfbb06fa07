// The wide kernel: the fused dequantize-and-multiply for compute-bound m (prompts), warp-specialized. gemm_quant's
// auto choice above kWideAutoMinM (40) tokens: 64-token tiles up to 64 tokens, 128-token tiles above. H100 timings
// against the swapped-operand kernel and cuBLAS are in docs/perf-notes.md (sixteenth and seventeenth sessions).
//
// Why another kernel. Above ~128 tokens the product, not the weight stream, sets the time: at m = 256 one Llama-3
// 8B layer is 112 GFLOP against 109 MB of INT4 weights. The swapped-operand kernel (gemm-swap-kernel.cuh) runs its
// 128-token tiles at ~45% of the tensor cores' BF16 rate there: every warp also issues its share of the cp.async
// copies, and every 64-deep stage ends at a block-wide barrier. Here one producer thread keeps a ring of stages full
// with three copies a stage - the weights of 4 strips and the activation tile as tensor-map loads (the activations
// swizzled by the copy engine), the scales as a bulk copy - each stage's arrival counted on a shared-memory barrier;
// the two consumer warpgroups only wait for full stages, dequantize and issue wgmmas, and hand each stage back on a
// second barrier once their wgmmas have read it. No block-wide barrier runs inside the main loop.
//
// Tile and fragments: as the swapped-operand kernel's 64- and 128-token tiles. A block covers 4 strips (256 output
// columns) x TOK tokens; warp w of each consumer warpgroup takes strip w, warpgroup wg takes slices 2 wg, 2 wg + 1
// of every strip (m64nTOKk16 per slice and 16-deep unit, A = the dequantized and scaled weights from registers, B =
// the activation tile through a 128-byte-swizzle descriptor); see gemm-swap-kernel.cuh for the A-fragment identity.
//
// Work split: one tile per block, or cluster split-k (csplit blocks per tile, block r the r-th of csplit k ranges,
// the fp32 partial tiles added through distributed shared memory) where the tiles alone would leave SMs idle. Every
// block parks its fp32 tile in its own (spent) ring, so C is stored in coalesced 8-byte chunks either way. Optional
// multicast pairs (csplit 1): two blocks on neighbouring column groups each load half of the shared activation tile
// into both. Stream-K (wide-split.h decides where auto takes it): one block per SM, each a range of (tile, stage)
// units, tiles cut between blocks handed on through per-block workspace slots (wide_streamk_park / _gather).
#pragma once

#include <cooperative_groups.h>

#include <atomic>

#include "cuda/async-copy.cuh"
#include "cuda/gemm-kernel.cuh"
#include "cuda/launch-util.h"
#include "cuda/wgmma.cuh"
#include "cuda/wide-split.h"

namespace rtnq::cuda::detail {

// The tiling (token tiles, strips per block, k per stage) is wide-split.h's, which the host-side rules share.
inline constexpr int kWideCols = kWideStrips * 64;          // output columns per block
inline constexpr int kWideConsumers = 256;                  // two warpgroups
inline constexpr int kWideThreads = kWideConsumers + 128;   // + the producer warpgroup (one warp issues)
// Registers a thread after setmaxnreg: the consumers take what the producer warpgroup gives back. An SM's four
// sub-partitions each hold one warp of every warpgroup and 16384 registers: 2 x 232 x 32 + 40 x 32 <= 16384.
inline constexpr int kWideConsumerRegs = 232;
inline constexpr int kWideProducerRegs = 40;
// The parked fp32 tile: [token][column] rows of 256 + 4 floats, so lane (g, t)'s writes (column g, token 2t) fall in
// 32 different banks; rows stay 16-byte aligned for the float4 reads of the reduction.
inline constexpr int kWideRedStride = kWideCols + 4;

// The tensor map's own alignment (64 bytes or more) aligns the struct, which the kernel takes as a
// __grid_constant__ so the map's address is a parameter-space address, as the tile loads require.
struct WideParams {
  CUtensorMap a_map;   // A [m][k]: boxes of 64 k x 128 tokens, 128-byte swizzle, zeros outside
  CUtensorMap w_map;   // the repacked words as [strip][2 KB chunk][2 KB]: one copy fetches a stage of 4 strips
  const void* a;       // A itself (the map's base; the kernel reads A only through the map)
  const uint4* w;      // repacked words
  const void* scales;  // [G][n_pad]
  void* c;
  int m, n, k, n_pad;
  int num_groups;
  int group;           // effective group length (k_pad for per-channel)
  int ku;              // k units (16 deep) per strip
  int kbs;             // 64-deep stages per tile: k_pad / 64
  int strips;          // n_pad / 64
  int m_tiles;         // ceil(m / 128)
  int csplit;          // blocks per tile (cluster size when > 1)
  int mcast;           // 2: clusters of two blocks on neighbouring column groups share each activation tile (csplit 1)
  int scale_rows;      // scale rows per stage: 1 (group >= 64), 2 (32) or 4 (16)
  int unit_shift;      // unit u of a stage uses scale row u >> unit_shift
  int evict_first;     // 1: one m tile, each weight is read once
  // Stream-K (csplit 1, no multicast): block b of G takes units [units b / G, units (b + 1) / G) of the (tile,
  // stage) order, stages fastest, tiles cut between blocks wherever the ranges fall. A block stores the tiles it
  // covers whole from its accumulators; cut tiles go through the workspace (wide_streamk_park / _gather).
  int streamk;
  int units;           // tiles * kbs (stream-K)
  int groups;          // column groups of 256 (stream-K)
  int* counters;       // stream-K: a flag per block, its parked tile is ready (zero on entry and exit)
  float* ws;           // stream-K: a slot per block for its parked fp32 tile
};

// The weight map's 2 KB chunks per strip and stage (a box row of 256 8-byte elements, TMA's longest).
inline constexpr int kWideChunkBytes = 2048;

template <int BITS, int TOK>
struct WideSizes {
  static_assert(TOK == kWideTokensBig || TOK == kWideTokensSmall, "token tiles of 64 or 128");
  static constexpr int kLaneU4 = BITS / 4;                         // 16-byte words per lane per unit
  static constexpr int kStripBytes = (kWideK / 16) * 32 * kLaneU4 * 16;  // one strip's 4 units: contiguous
  static constexpr int kABytes = TOK * kWideK * 2;                 // first in the stage: 1024-byte aligned
  static constexpr int kWBytes = kWideStrips * kStripBytes;
  static constexpr int kChunks = kStripBytes / kWideChunkBytes;    // 1 (INT4) or 2 (INT8)
  static_assert(kStripBytes % kWideChunkBytes == 0, "a strip's stage is whole chunks");
  static constexpr int kSBytes = 4 * kWideCols * 2;                // up to 4 scale rows (group 16)
  static constexpr int kStageBytes = kABytes + kWBytes + kSBytes;
  static constexpr int kStages = BITS == 4 || TOK == kWideTokensSmall ? 8 : 6;
  static constexpr int kRingBytes = kStages * kStageBytes;
  static constexpr int kSmemBytes = kRingBytes + 1024;             // the ring starts at a 1024-byte boundary
  static_assert(kStageBytes % 1024 == 0, "every stage's activation tile is 1024-byte aligned (swizzle atoms)");
  static_assert(TOK * kWideRedStride * 4 <= kRingBytes, "the parked fp32 tile fits the ring");
  static_assert(kSmemBytes <= 227 * 1024, "fits the opt-in shared memory of sm_90");
  static_assert(2 * kSmemBytes > 228 * 1024, "one block per SM (the dispatcher counts on it)");
};

// The whole cluster's threads meet: release/acquire (the parked tiles), or relaxed (the last one: the remote reads
// are complete, their sums already stored).
__device__ __forceinline__ void cluster_barrier() {
  asm volatile("barrier.cluster.arrive.aligned;\nbarrier.cluster.wait.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_barrier_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\nbarrier.cluster.wait.aligned;" ::: "memory");
}

// The two consumer warpgroups meet (named barrier 1; the producer warpgroup takes no part).
__device__ __forceinline__ void consumer_sync() { asm volatile("bar.sync 1, %0;" ::"n"(kWideConsumers) : "memory"); }

// A tile's column group and token tile. One tile a block (or a cluster): the token tiles of a column group are
// neighbours, so they run at once and the second reads the weights from L2. Stream-K: token tiles outermost, for the
// same reason (block b and block b + grid / m_tiles are at the same column group at about the same time; with the
// token tiles of a column group next to each other, one block would stream them one after the other, the weights
// long gone from L2 by the second). Multicast pairs (blocks 2j, 2j + 1: one cluster) take neighbouring column
// groups of the same token tile.
__device__ __forceinline__ void wide_tile_at(const WideParams& p, int tile, int& cg, int& mt) {
  if (p.streamk) {
    cg = tile % p.groups;
    mt = tile / p.groups;
  } else if (p.mcast > 1) {
    cg = (tile / (2 * p.m_tiles)) * 2 + (tile & 1);
    mt = (tile >> 1) % p.m_tiles;
  } else {
    cg = tile / p.m_tiles;
    mt = tile % p.m_tiles;
  }
}

// A consumer thread's accumulator positions: slice q, token pair i, half h hold column col + 16 q + 8 h of tokens
// tok + 8 i (acc[q][i][2 h]) and tok + 8 i + 1 (acc[q][i][2 h + 1]); f(q, i, h) for every position inside C.
template <int TOK, typename F>
__device__ __forceinline__ void wide_positions(const WideParams& p, int col, int tok, F&& f) {
#pragma unroll
  for (int q = 0; q < 2; ++q)
#pragma unroll
    for (int i = 0; i < TOK / 8; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        if (col + 16 * q + 8 * h < p.n && tok + 8 * i < p.m) f(q, i, h);
}

// Stream-K hand-off, without atomics. Ranges are in (tile, stage) order, so a tile cut between blocks b < b' < ...
// is the end of b's range (its head: stage 0 on) and the start of the others'. Every block parks at most one
// partial tile - its first share, where its range starts inside a tile - in its own workspace slot, and raises its
// flag to the number of stages it covered; the head's block, whose share of the tile comes last in its range (so
// the others' are usually long done), adds blocks b + 1, b + 2, ... to its accumulators in that order (the same sum
// in every run) until their counts and its own make the tile's stages, and stores the tile. (fp32 atomics into a
// shared [n][m] sum ran at the L2's atomic rate instead: 8B gate_up at m = 256 took 144 us against 108 without
// stream-K, a third of its warps' samples in the hand-off; docs/perf-notes.md, eighteenth session.) Slots hold the
// accumulators as the threads hold them: float4 c of consumer thread x at [c][x], so every warp's loads and stores
// are 512 contiguous bytes. The workspace is left as found: flags and slots zero.
template <int TOK>
__device__ __forceinline__ float4* wide_slot(const WideParams& p, int block, int tid) {
  return reinterpret_cast<float4*>(p.ws) + int64_t(block) * (TOK / 8 * 2 * kWideConsumers) + tid;
}

// A share that starts inside its tile: park it, then raise the flag (consumer threads only: named barrier 1).
template <int TOK>
__device__ void wide_streamk_park(float (&acc)[2][TOK / 8][4], const WideParams& p, int covered, int tid) {
  float4* slot = wide_slot<TOK>(p, blockIdx.x, tid);
#pragma unroll
  for (int q = 0; q < 2; ++q)
#pragma unroll
    for (int i = 0; i < TOK / 8; ++i)
      __stcg(slot + (q * (TOK / 8) + i) * kWideConsumers,
             make_float4(acc[q][i][0], acc[q][i][1], acc[q][i][2], acc[q][i][3]));
  __threadfence();
  consumer_sync();
  if (tid == 0)
    asm volatile("st.release.gpu.global.b32 [%0], %1;" ::"l"(p.counters + blockIdx.x), "r"(covered) : "memory");
}

// The head's block (`missing` of the tile's stages are other blocks'): their shares added to acc, their flags and
// slots cleared. The head's share ends this block's range, so the ring is idle (every stage consumed): each share
// comes in as one bulk copy, and is read from shared memory. (Loaded straight into registers beside the 128
// accumulators, few loads fit in flight: four round trips from L2 a share.) Consumer threads only (named barrier 1).
// It waits only on blocks after it in the grid, for shares at the start of their ranges, whose parking waits on
// nothing: with fewer SMs than blocks (a shared card), the blocks that started finish, and the rest start as they do.
template <int TOK>
__device__ void wide_streamk_gather(float (&acc)[2][TOK / 8][4], const WideParams& p, int missing, int tid,
                                    unsigned char* ring, uint32_t bar) {
  constexpr int kChunks = TOK / 8 * 2;  // float4s a thread
  constexpr uint32_t kBytes = kChunks * kWideConsumers * 16;
  static_assert(kBytes <= WideSizes<4, TOK>::kRingBytes && kBytes <= WideSizes<8, TOK>::kRingBytes,
                "a share fits the ring");
  consumer_sync();  // every warp's last wgmmas have read the ring
  for (int b = blockIdx.x + 1, n = 0; missing > 0; ++b, ++n) {
    __shared__ int s_covered;
    if (tid == 0) {
      int covered = 0;
      do asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(covered) : "l"(p.counters + b) : "memory");
      while (covered == 0);
      p.counters[b] = 0;  // (read by no one else before the next call)
      s_covered = covered;
      // The share was written by other blocks' stores and is read by the copy engine: order the two proxies.
      asm volatile("fence.proxy.async.global;" ::: "memory");
      uint64_t policy;
      asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
      mbar_arrive_expect_tx(bar, kBytes);
      bulk_copy_g2s(smem_u32(ring), wide_slot<TOK>(p, b, 0), kBytes, bar, policy);
    }
    mbar_wait(bar, n & 1);
    const float4* in = reinterpret_cast<const float4*>(ring) + tid;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const float4 v = in[c * kWideConsumers];
      float* a = acc[c / (TOK / 8)][c % (TOK / 8)];
      a[0] += v.x, a[1] += v.y, a[2] += v.z, a[3] += v.w;
    }
    float4* slot = wide_slot<TOK>(p, b, tid);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) __stcg(slot + c * kWideConsumers, make_float4(0.f, 0.f, 0.f, 0.f));
    // Every thread has read the ring before the next share lands in it (and s_covered is read before it changes).
    consumer_sync();
    missing -= s_covered;
    consumer_sync();
  }
}

// Registers: 128 accumulators a consumer thread, plus two buffers of A fragments and raw words: more than the 168
// that 384 threads get at launch (with fewer, ptxas serializes the wgmmas, warning C7512). A 288-thread block (one
// producer warp) does not help: one sub-partition then holds three of its warps, so the cap is the same. So the
// producer warpgroup hands registers over to the consumers (setmaxnreg).
template <int BITS, typename T, int TOK>
__global__ void __launch_bounds__(kWideThreads, 1) gemm_wide_kernel(const __grid_constant__ WideParams p) {
  using Sz = WideSizes<BITS, TOK>;
  using Tr = ActTraits<T>;
  constexpr int kS = Sz::kStages, kTT = TOK / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];  // (as every kernel declares it; aligned below)
  unsigned char* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  __shared__ __align__(8) uint64_t full_bar[kS], empty_bar[kS], gather_bar;
  constexpr uint32_t kBarBytes = sizeof(uint64_t);  // barrier s of a ring: its slot 0's address + kBarBytes * s

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // This block's stages: units [u0, u0 + n_st) of the (tile, 64-deep stage) order. Split-k and one tile a block:
  // block r of tile t's cluster takes the r-th of csplit k ranges; stream-K: a range that may span tiles.
  const int rank = p.streamk ? 0 : int(blockIdx.x) % p.csplit;
  int u0, n_st;
  if (p.streamk) {
    u0 = int(int64_t(p.units) * blockIdx.x / gridDim.x);
    n_st = int(int64_t(p.units) * (blockIdx.x + 1) / gridDim.x) - u0;
  } else {
    const int kb0 = rank * p.kbs / p.csplit;
    u0 = int(blockIdx.x) / p.csplit * p.kbs + kb0;
    n_st = (rank + 1) * p.kbs / p.csplit - kb0;  // >= 1: csplit <= kbs
  }
  const int mrank = p.mcast > 1 ? int(blockIdx.x) & 1 : 0;  // this block's half of a multicast pair's loads
  const uint32_t ring = smem_u32(smem);
  if (tid == 0) {
    for (int s = 0; s < kS; ++s) {
      mbar_init(smem_u32(&full_bar[s]), 1);       // the producer's arrival (+ the stage's bytes)
      // One arrival per consumer warp of every block whose copies fill this stage (both of a multicast pair).
      mbar_init(smem_u32(&empty_bar[s]), kWideConsumers / 32 * p.mcast);
    }
    mbar_init(smem_u32(&gather_bar), 1);  // stream-K: the shares a head's block gathers
    mbar_init_fence();
  }
  __syncthreads();
  if (p.mcast > 1) cluster_barrier();  // the partner's barriers exist before any copy or arrival reaches them
  asm volatile("griddepcontrol.launch_dependents;");

  if (warp >= kWideConsumers / 32) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kWideProducerRegs));
    // Producer: one lane issues every copy. Weights and scales of the first stages go out before
    // griddepcontrol.wait (they do not depend on the kernel before), their activations after it.
    if (warp == kWideConsumers / 32 && lane == 0) {
      tma_prefetch_map(&p.a_map);
      tma_prefetch_map(&p.w_map);
      uint64_t policy;
      if (p.evict_first) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
      else asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(policy));
      uint64_t keep;
      asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(keep));
      // The producer thread's time per stage is the copy issue rate of its block. ncu's per-instruction samples had
      // it issuing ~135 instructions a stage (integer divisions for the scale row and the ring slot, barrier
      // addresses re-read from special registers) at ~0.57 us a stage on 8B gate_up at m = 64: no faster than the
      // consumers, which then waited on full barriers. So every per-stage quantity is a running count here, and
      // the divisions run once a tile.
      const uint32_t full0 = smem_u32(full_bar), empty0 = smem_u32(empty_bar);
      const int64_t s_row_bytes = int64_t(p.n_pad) * 2;
      const int spg = p.group >= kWideK ? p.group / kWideK : 0;  // stages per scale group (0: groups under 64)
      // The activation half this block loads in a multicast pair (into both blocks), or the whole tile.
      constexpr int kHalf = TOK / 2;
      const uint32_t a_off = p.mcast > 1 ? mrank * kHalf * kWideK * 2 : 0;
      // The tile being issued: stage kb of tile `tile`, its column group cg, first activation row a_row, the bytes
      // a stage brings, its scales' source, and the scale row sg (groups of 64 and up: one step every spg stages,
      // sg_left to go; smaller groups: scale_rows rows every stage).
      int tile = u0 / p.kbs, kb = u0 - tile * p.kbs, cg, a_row, sg, sg_left;
      uint32_t stage_bytes, s_bytes;
      const unsigned char* s_g;
      auto enter_tile = [&] {
        int mt;
        wide_tile_at(p, tile, cg, mt);
        a_row = mt * TOK + (p.mcast > 1 ? mrank * kHalf : 0);
        const int strips = min(kWideStrips, p.strips - cg * kWideStrips);  // the last column group may hold 2
        // (The weight box always counts 4 strips: rows past the last strip arrive as zeros.)
        s_bytes = strips * 64 * 2;
        stage_bytes = Sz::kABytes + Sz::kWBytes + p.scale_rows * s_bytes;
        s_g = static_cast<const unsigned char*>(p.scales) + int64_t(cg) * kWideCols * 2;
        sg = spg > 0 ? kb / spg : kb * p.scale_rows;
        sg_left = spg > 0 ? spg - kb % spg : 0;
      };
      enter_tile();
      auto issue_ws = [&](uint32_t base, uint32_t bar) {  // arrival, weights and scales of stage kb, in order
        mbar_arrive_expect_tx(bar, stage_bytes);
        tma_load_3d_hint(base + Sz::kABytes, &p.w_map, 0, kb * Sz::kChunks, cg * kWideStrips, bar, policy);
        for (int r = 0; r < p.scale_rows; ++r)
          bulk_copy_g2s(base + Sz::kABytes + Sz::kWBytes + r * kWideCols * 2,
                        s_g + min(sg + r, p.num_groups - 1) * s_row_bytes, s_bytes, bar, keep);
        if (spg == 0) sg += p.scale_rows;
        else if (--sg_left == 0) ++sg, sg_left = spg;
      };
      auto issue_a = [&](uint32_t base, uint32_t bar, int kb_a, int row) {
        if (p.mcast > 1) tma_load_2d_multicast(base + a_off, &p.a_map, kb_a * kWideK, row, bar, 0x3);
        else tma_load_2d(base, &p.a_map, kb_a * kWideK, row, bar);
      };
      auto next = [&](int j) {  // on from stage j (the divisions only where a next tile starts)
        if (++kb == p.kbs && j + 1 < n_st) ++tile, kb = 0, enter_tile();
      };
      // Ring slot s: its stage's shared-memory address and its full barrier.
      auto stage_at = [&](int s) { return ring + s * Sz::kStageBytes; };
      auto full_at = [&](int s) { return full0 + kBarBytes * s; };
      // The first two stages go out in a short burst, the rest of the ring once the first has landed. Asking for the
      // whole ring at once, every block's first stage arrived only with the tail of that burst, as all blocks ask at
      // the same moment (ncu: 13% of the consumers' time waiting for it, 8B gate_up at m = 64). H100, us, whole ring
      // vs two first: 8B layer at m = 64 88.1 vs 84.7; gate_up at m = 256 107.7 vs 100.2 (docs/perf-notes.md,
      // seventeenth session).
      constexpr int kFirst = 2;
      static_assert(kFirst < kS, "the first stages fit the ring");
      const int first = min(kFirst, n_st);
      int first_kb[kFirst], first_row[kFirst];
#pragma unroll
      for (int j = 0; j < kFirst; ++j)
        if (j < first) {
          first_kb[j] = kb, first_row[j] = a_row;
          issue_ws(stage_at(j), full_at(j));
          next(j);
        }
      asm volatile("griddepcontrol.wait;" ::: "memory");
#pragma unroll
      for (int j = 0; j < kFirst; ++j)
        if (j < first) issue_a(stage_at(j), full_at(j), first_kb[j], first_row[j]);
      mbar_wait(full0, 0);
      int slot = first;        // ring slot of stage j
      uint32_t empty_par = 1;  // flips as slot wraps: stage j >= kS waits for its slot's empty phase j / kS - 1
      for (int j = first; j < n_st; ++j) {
        if (j >= kS) mbar_wait(empty0 + kBarBytes * slot, empty_par);
        const uint32_t base = stage_at(slot), bar = full_at(slot);
        issue_ws(base, bar);
        issue_a(base, bar, kb, a_row);
        next(j);
        if (++slot == kS) slot = 0, empty_par ^= 1;
      }
    }
    __syncwarp();
    // The hand-off's barriers, as the consumers run them (the copies are all complete: the consumers waited for
    // every stage before parking). Stream-K has none: the consumers store every tile from their registers.
    if (p.streamk) return;
    if (p.csplit > 1) cluster_barrier();
    else __syncthreads();
    if (p.csplit > 1 || p.mcast > 1) cluster_barrier_relaxed();
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kWideConsumerRegs));
    // Consumers.
    const int wg = warp >> 2, wstrip = warp & 3, g = lane >> 2, t = lane & 3;
    float acc[2][kTT][4];
    auto zero_acc = [&] {
#pragma unroll
      for (int q = 0; q < 2; ++q)
#pragma unroll
        for (int i = 0; i < kTT; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[q][i][e] = 0.f;
    };
    zero_acc();
    // A unit's raw words and scales of this warpgroup's two slices: INT4 the lane's 32-bit words 2 wg, 2 wg + 1;
    // INT8 its 16-byte word wg (words 4 wg .. 4 wg + 3); scales: the lane's scale words 2 wg, 2 wg + 1.
    struct Raw {
      uint32_t w[BITS / 2];
      uint32_t s[2];
    };
    // Everything that does not change from stage to stage is worked out once, here: ncu's per-instruction samples
    // had ~30% of the main loop's time in the stage-end code when the barrier addresses (each a special-register
    // read), the scale rows (a shift by a runtime amount) and the wgmma descriptors were recomputed per stage or unit.
    // Byte offsets within a stage: this lane's weight words of unit 0, and its scale words of every unit.
    const uint32_t w_off = Sz::kABytes + wstrip * Sz::kStripBytes + lane * Sz::kLaneU4 * 16 + wg * (BITS == 4 ? 8 : 16);
    uint32_t s_off[kWideK / 16];
#pragma unroll
    for (int u = 0; u < kWideK / 16; ++u)
      s_off[u] = Sz::kABytes + Sz::kWBytes + ((u >> p.unit_shift) * kWideCols + wstrip * 64 + g * 8) * 2 + wg * 8;
    auto load_raw = [&](const unsigned char* stage, int u, Raw& r) {
      const unsigned char* wl = stage + w_off + u * 32 * Sz::kLaneU4 * 16;
      if constexpr (BITS == 4) {
        const uint2 v = *reinterpret_cast<const uint2*>(wl);
        r.w[0] = v.x, r.w[1] = v.y;
      } else {
        const uint4 v = *reinterpret_cast<const uint4*>(wl);
        r.w[0] = v.x, r.w[1] = v.y, r.w[2] = v.z, r.w[3] = v.w;
      }
      const uint2 sw = *reinterpret_cast<const uint2*>(stage + s_off[u]);
      r.s[0] = sw.x, r.s[1] = sw.y;
    };
    // The stage hand-back: lane r of every warp arrives on the empty barrier of multicast partner r (both partners'
    // copies fill a stage), or lane 0 on its own block's (rank `rank` of a split-k cluster); other lanes do not.
    const uint32_t full0 = smem_u32(full_bar);
    const uint32_t empty0_at = mapa_shared(smem_u32(empty_bar), p.mcast > 1 ? lane : rank);
    const bool hands_back = lane < p.mcast;
    const int col_in = wstrip * 64 + 32 * wg + g;  // this lane's first accumulator column within a tile
    Raw raw[2];
    uint32_t afb[2][2][4];
    int st = 0;          // ring slot of stage j
    uint32_t phase = 0;  // parity of that slot's full barrier
    // Stream-K: stages left in this block's share of the current tile. (The tile, and whether the share is its head
    // or all of it, are worked out where the share ends: kept in registers through the loop, ptxas spilled.)
    int to_end = p.streamk ? min(p.kbs - u0 % p.kbs, n_st) : 0;
    mbar_wait(full0, 0);
    load_raw(smem, 0, raw[0]);
    for (int j = 0; j < n_st; ++j) {
      const unsigned char* stage = smem + st * Sz::kStageBytes;
      const uint64_t desc0 = wgmma_desc_k128(ring + st * Sz::kStageBytes);
      const int prev = st == 0 ? kS - 1 : st - 1;
#pragma unroll
      for (int u = 0; u < kWideK / 16; ++u) {
        // Fragments are double-buffered: unit u writes buffer u & 1 once the group of the unit two back has
        // completed. At unit 1 that is the previous stage's last group: its stage goes back to the producer. (The
        // wait is unconditional, also before the first group, where it returns at once: on a path where a wgmma's
        // A registers are written without one, ptxas serializes every wgmma of the kernel, warning C7513. Four
        // buffers, three groups in flight, measured no faster: docs/perf-notes.md, seventeenth session.)
        wgmma_wait<1>();
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          uint32_t b[4];
          dequant_slice_scaled<BITS, T>(raw[u & 1].w, q, raw[u & 1].s[q], b);
          afb[u & 1][q][0] = b[0];
          afb[u & 1][q][1] = b[2];
          afb[u & 1][q][2] = b[1];
          afb[u & 1][q][3] = b[3];
        }
        wgmma_fence();
        // (desc0 + 2 u: the descriptor of the unit's 16 k, 32 bytes on; see wgmma_desc_k128)
#pragma unroll
        for (int q = 0; q < 2; ++q) Wgmma<T, TOK>::run(acc[q], afb[u & 1][q], desc0 + 2 * u);
        wgmma_commit();
        // (Here, not right after the wait: an arrival between a wait and the next wgmmas made ptxas serialize
        // every wgmma, warning C7513.)
        if (u == 1 && j > 0) mbar_arrive_remote_if(empty0_at + kBarBytes * prev, hands_back);
        if (u + 1 < kWideK / 16) {
          load_raw(stage, u + 1, raw[(u + 1) & 1]);
        } else if (j + 1 < n_st) {
          if (++st == kS) st = 0, phase ^= 1;
          mbar_wait(full0 + kBarBytes * st, phase);
          load_raw(smem + st * Sz::kStageBytes, 0, raw[0]);
        }
      }
      // Stream-K: where this block's share of a tile ends, its tile is stored (whole, or once complete) or handed on.
      // The producer runs on meanwhile: the next tile's first stages are in flight or landed.
      if (p.streamk && --to_end == 0) {
        wgmma_wait<0>();
#pragma unroll
        for (int q = 0; q < 2; ++q) wgmma_pin(acc[q]);
        const int u_end = u0 + j + 1, tile = (u_end - 1) / p.kbs, tile_u0 = tile * p.kbs;
        int cg, mt;
        wide_tile_at(p, tile, cg, mt);
        const int col = cg * kWideCols + col_in, tok = mt * TOK + 2 * t;
        // A share that starts inside the tile is parked; the head's block gathers the others and stores the tile.
        auto store = [&] {
          T* c_b = static_cast<T*>(p.c) + int64_t(tok) * p.n + col;
          wide_positions<TOK>(p, col, tok, [&](int q, int i, int h) {
            T* dst = c_b + (8 * i) * p.n + 16 * q + 8 * h;
            dst[0] = Tr::from_float(acc[q][i][2 * h]);
            if (tok + 8 * i + 1 < p.m) dst[p.n] = Tr::from_float(acc[q][i][2 * h + 1]);
          });
        };
        if (u0 > tile_u0) {
          wide_streamk_park<TOK>(acc, p, u_end - u0, tid);
        } else if (u_end < tile_u0 + p.kbs) {
          // A head's share ends the range: the block's last tile. (Leaving here, not looping on with the sums
          // changed outside the wgmmas, spares ptxas the registers it spilled for that.)
          wide_streamk_gather<TOK>(acc, p, tile_u0 + p.kbs - u_end, tid, smem, smem_u32(&gather_bar));
          store();
          return;
        } else {
          store();
        }
        zero_acc();
        to_end = min(p.kbs, n_st - j - 1);
      }
    }
    if (p.streamk) {
      wgmma_wait<0>();  // (none is pending here, but ptxas cannot tell)
      return;
    }
    wgmma_wait<0>();
#pragma unroll
    for (int q = 0; q < 2; ++q) wgmma_pin(acc[q]);
    int cg, mt;
    wide_tile_at(p, int(blockIdx.x) / p.csplit, cg, mt);
    const int m0 = mt * TOK;
    // Park: every consumer warp is past its last wgmma (which read the ring) before any overwrites it.
    consumer_sync();
    float* red = reinterpret_cast<float*>(smem);
#pragma unroll
    for (int i = 0; i < kTT; ++i) {
      const int tk = 8 * i + 2 * t;
#pragma unroll
      for (int q = 0; q < 2; ++q)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float* r0 = red + tk * kWideRedStride + col_in + 16 * q + 8 * h;
          r0[0] = acc[q][i][2 * h];
          r0[kWideRedStride] = acc[q][i][2 * h + 1];
        }
    }

    // Hand-off: the parked tiles are visible block-wide (one tile) or cluster-wide (split-k), then block `rank`
    // adds up its share of the tile's valid tokens from every block of the cluster, in rank order, and stores C.
    namespace coop = cooperative_groups;
    coop::cluster_group cluster = coop::this_cluster();
    if (p.csplit > 1) cluster_barrier();
    else __syncthreads();
    const float* parked = red;
    const int valid = min(TOK, p.m - m0);
    const int chunks = valid * (kWideCols / 4);
    const int lo = chunks * rank / p.csplit, hi = chunks * (rank + 1) / p.csplit;
    T* c_g = static_cast<T*>(p.c);
    const bool vec = (p.n & 3) == 0;  // 4 outputs (8 bytes) per store stay 8-byte aligned
    for (int ch = lo + tid; ch < hi; ch += kWideConsumers) {
      const int tk = ch / (kWideCols / 4), lc = (ch % (kWideCols / 4)) * 4;
      const float* local = parked + tk * kWideRedStride + lc;
      float4 sum = *reinterpret_cast<const float4*>(local);
      for (int jr = 1; jr < p.csplit; ++jr) {
        const int src = (rank + jr) % p.csplit;  // (a fixed order per element: the sum is the same in every run)
        const float4 v = *reinterpret_cast<const float4*>(cluster.map_shared_rank(const_cast<float*>(local), src));
        sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
      }
      const int col = cg * kWideCols + lc;
      if (col >= p.n) continue;
      T* dst = c_g + int64_t(m0 + tk) * p.n + col;
      if (vec) {
        union {
          T h[4];
          uint2 u;
        } o;
        o.h[0] = Tr::from_float(sum.x), o.h[1] = Tr::from_float(sum.y);
        o.h[2] = Tr::from_float(sum.z), o.h[3] = Tr::from_float(sum.w);
        *reinterpret_cast<uint2*>(dst) = o.u;
      } else {
        const float vals[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (col + e < p.n) dst[e] = Tr::from_float(vals[e]);
      }
    }
    // No block leaves (taking its shared memory with it) while another may still read it, or arrive on its barriers.
    if (p.csplit > 1 || p.mcast > 1) cluster_barrier_relaxed();
  }
}

template <int BITS, typename T, int TOK>
cudaError_t wide_smem_attr() {
  static const cudaError_t e = cudaFuncSetAttribute(gemm_wide_kernel<BITS, T, TOK>,
                                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    WideSizes<BITS, TOK>::kSmemBytes);
  return e;
}

template <int BITS, typename T, int TOK>
cudaError_t launch_gemm_wide(const WideParams& p, int blocks, bool pdl, cudaStream_t stream) {
  if (const cudaError_t e = wide_smem_attr<BITS, T, TOK>(); e != cudaSuccess) return e;
  const LaunchConfig lc(blocks, kWideThreads, WideSizes<BITS, TOK>::kSmemBytes, stream, pdl, p.csplit * p.mcast);
  return launch_with(gemm_wide_kernel<BITS, T, TOK>, lc, p);
}

// How many clusters of `size` (2..kWideMaxCluster) blocks the card holds at once; 0 if none or the query fails.
// (Single blocks: one per SM, see WideSizes.)
template <int BITS, typename T, int TOK>
int gemm_wide_max_clusters(int size) {
  static std::atomic<int> cache[kWideMaxCluster + 1] = {};
  if (size < 2 || size > kWideMaxCluster) return 0;
  int n = cache[size].load(std::memory_order_relaxed);
  if (n == 0) {
    if (wide_smem_attr<BITS, T, TOK>() == cudaSuccess)
      n = max_active_clusters(gemm_wide_kernel<BITS, T, TOK>, size, kWideThreads, WideSizes<BITS, TOK>::kSmemBytes);
    else
      (void)cudaGetLastError();
    n = n > 0 ? n : -1;  // -1: asked, none
    cache[size].store(n, std::memory_order_relaxed);
  }
  return n > 0 ? n : 0;
}

// A tensor map of A [m][k] (FP16 or BF16, row stride k elements) in boxes of 64 k x box_rows tokens with the 128-byte
// swizzle, zeros outside A: what the producer's tile loads name (gemm-wide.cu).
// The repacked words (strips of strip_bytes each) as [strips][strip_bytes / 2 KB][256 x 8 bytes], in boxes of
// chunks x 4 strips: one stage of one column group.
cudaError_t make_wide_weight_map(const void* w, int64_t strip_bytes, int64_t strips, int chunks, CUtensorMap* map);
// box_rows: the token tile (128 or 64), or half of it where each block of a multicast pair loads half the tile.
cudaError_t make_wide_act_map(const void* a, int64_t m, int64_t k, bool bf16, int box_rows, CUtensorMap* map);

#define RTNQ_WIDE_INSTANCE(PREFIX, BITS, T, TOK)                                                              \
  PREFIX template cudaError_t launch_gemm_wide<BITS, T, TOK>(const WideParams&, int, bool, cudaStream_t);      \
  PREFIX template int gemm_wide_max_clusters<BITS, T, TOK>(int);
#define RTNQ_WIDE_INSTANCES_FOR(PREFIX, T, TOK) \
  RTNQ_WIDE_INSTANCE(PREFIX, 4, T, TOK)         \
  RTNQ_WIDE_INSTANCE(PREFIX, 8, T, TOK)

}  // namespace rtnq::cuda::detail
