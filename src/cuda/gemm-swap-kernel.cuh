// The swapped-operand kernel: the fused dequantize-and-multiply that gemm_quant runs by default (every m, except
// one token on small linears), computed as C^T = W * A^T so the weights, not the activations, fill the 16-row
// side of each MMA.
//
// Why swap. An MMA multiplies a 16-row (mma.sync) or 64-row (wgmma: 16 per warp) A operand by an 8..256-column B
// operand. The tiled kernel (gemm-kernel.cuh) puts the activations on the row side and keeps one 16- or 64-row
// tile of A per block, shared by only 128 weight columns, and splits k over its warps (a shared-memory reduction
// per tile). Here the dequantized weights are the A operand - the repacked layout already gives a lane, for one
// 16 x 64 unit, words that are A fragments of four 16-column slices (see below) - and the activations are the B
// operand, from one activation tile that the whole block shares. So:
//   - a block covers 4 strips = 256 output columns, one strip per warp of a warpgroup; the weights of a strip are
//     streamed once per block (one 16-byte chunk per lane per unit, INT4), and every warp owns its output
//     columns outright, so there is no reduction between warps;
//   - one activation tile (NT tokens x 64 k) serves 256 columns, 4x fewer activation bytes per weight byte than
//     a per-warp copy;
//   - with wgmma (MODE != kSwapMma) each unit is 4 (slices) m64nNTk16 per warpgroup, asynchronous, the next
//     unit's weights dequantized meanwhile; with mma.sync 4 x NT/8 m16n8k16 per warp, B fragments by ldmatrix.
//     At NT = 128 two warpgroups split the slices (0-1, 2-3) of the same strips. Up to 8 tokens (wgmma only) the
//     tile has 8 rows: m64n8k16 moves the same 1024 weights per instruction as m64n16k16 for half the products
//     (H100, 8B layer at m = 1-8: 2-4% faster than 16-token tiles; docs/perf-notes.md).
//
// A-fragment identity. For lane (g = lane / 4, t = lane % 4) and slice s, word s of the lane's unit dequantizes
// (dequant_int4 / dequant_int8) into b[0..3] = the B registers of n8 tiles j = 0, 1 with (kh = 0, 1): b[2j + kh]
// holds column 16 s + 8 j + g at k = 8 kh + 2 t, +1. The A fragment of the 16 (columns) x 16 (k) slice wants
// a0 = (row g, k 2t), a1 = (row g + 8, k 2t), a2 = (row g, k 2t + 8), a3 = (row g + 8, k 2t + 8), i.e.
// {b[0], b[2], b[1], b[3]} - for mma.sync and, per warp of the warpgroup, for wgmma alike. The accumulator then
// holds rows (= output columns) g and g + 8 of the slice and columns (= tokens) 2t, 2t + 1 of each 8-token tile.
//
// Work split, two ways:
//   - cluster split-k (csplit > 1; when the tiles are few against the resident slots, i.e. small m): a thread
//     block cluster of csplit blocks per tile, block r taking the r-th of csplit equal k ranges. The partial
//     sums meet in distributed shared memory: each block parks its fp32 tile in its own (spent) ring, one
//     cluster barrier, then block r adds up the r-th share of the tile from all csplit blocks and stores C. No
//     global atomics, no fence, no arrival counter, no read-back from L2 - those dependent L2 round trips were
//     the fixed cost of the stream-K hand-off on small linears - and no workspace; the sum order is fixed.
//   - stream-K over (column group of 4 strips, m tile, 64-deep k batch), k fastest, then the m tiles of one
//     column group (their weights come from L2 the second time), as in the tiled kernel. Partial covers meet in
//     the fp32 workspace, stored transposed ([n][m]: a lane's two tokens are adjacent, so the atomics are
//     float2), with a per-tile arrival counter; in the block that completes a tile every warp reloads the
//     finished sums of its own fragment positions into its accumulators, stores C and zeroes the workspace.
// Deferred scales (INT4, 8-token tiles with wgmma, groups of 64 and up): the MMAs take the integer weights q
// (exact in FP16 and BF16) into partial sums per group, which are scaled in fp32 and added to the accumulators at
// the end of each group. That drops the HMUL2 per two weights from the dequantization - a quarter of its
// instructions - for one FFMA per accumulator per group, and the scaled weights are no longer rounded to 16 bits.
// H100, 8B layer at m = 1-8: 50.3-50.7 us with them, 51.2-51.7 without. INT8 was slower with them (8B gate_up at
// m = 1 45.4 vs 43.1 us). At 16 tokens the second accumulator set and the word prefetch (below) do not both fit 128
// registers (32 bytes spilled; 8B layer at m = 16 57.8 us with them, 56.7 without), and at 32 and up the second set
// does not fit at all.
// Word prefetch (wgmma): a unit's weight words and scales are read from shared memory while the previous unit's
// wgmmas run, and the stage's first unit before the copies for a later stage are issued. Read just before their
// dequantization, their latency stood fully exposed at every unit, since the registers they land in are the A
// fragments of the wgmma group that is waited for first (ncu, 8B gate_up at m = 64: 16% of the warps' stall samples
// on the first instruction after those loads). H100, 8B layer: 53.1 -> 50.5 us at m = 1, 96.6 -> 89.7-91.5 at
// m = 64 (docs/perf-notes.md, tenth session).
// Pipeline: block-wide kStages-deep cp.async ring; weights with an L2 evict-first hint when each is read once.
// The activation tile's XOR swizzle (chunk c of row r at c ^ (r & 7)) is the 128-byte swizzle that wgmma's
// descriptor names, so ldmatrix and wgmma read the same tile. Programmatic dependent launch as in the decode
// kernel: weights and scales of the first stages are requested before griddepcontrol.wait, the activations after.
// Measurements of every variant: docs/perf-notes.md, "Swapped-operand kernel" and "Cluster split-k".
#pragma once

#include <cooperative_groups.h>

#include <algorithm>
#include <atomic>

#include "cuda/gemm-kernel.cuh"
#include "cuda/launch-util.h"
#include "cuda/wgmma.cuh"
#ifdef RTNQ_SWAP_TRACE
#include "cuda/gemm.h"  // kSwapTraceWords
#endif

namespace rtnq::cuda::detail {

inline constexpr int kSwapStrips = 4;               // 64-column strips per block, one per warp of a warpgroup
inline constexpr int kSwapCols = kSwapStrips * 64;  // output columns per block
inline constexpr int kSwapK = 64;                   // k per stage (4 units)
inline constexpr int kSwapMaxCluster = 16;          // the largest (non-portable) cluster size of sm_90
inline constexpr int kSwapMaxPerSm = 8;             // blocks per SM a spread launch may ask for (padded_smem_bytes)
// Cluster split-k parks a block's fp32 tile as [token][column] rows of 256 + 4 floats: lane (g, t) writes column
// g of token 2t, so rows 8 banks apart put a warp's 32 writes in 32 banks; rows stay 16-byte aligned for the
// float4 reads of the reduction.
inline constexpr int kSwapRedStride = kSwapCols + 4;

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
  int csplit;              // > 1: cluster split-k, blocks per tile (= cluster size); else stream-K
  int group_stages;        // > 0: deferred scales (8/16-token wgmma tiles), 64-deep stages per group; 0: scaled weights
#ifdef RTNQ_SWAP_TRACE
  unsigned long long* trace;  // diagnostic builds: [0] record count, then kSwapTraceWords per block (see below)
#endif
};

#ifdef RTNQ_SWAP_TRACE
// Diagnostic builds only (-DRTNQ_SWAP_TRACE; bench-gemm --trace): where a call's time goes. Thread 0 of every block
// appends kSwapTraceWords (gemm.h) words: {weights pointer (names the call), block | SM << 32, csplit, then
// %globaltimer at start, after griddepcontrol.wait, at the hand-off, once the partial sums are handed on (cluster:
// parked and past the first cluster barrier; stream-K: added, fenced and counted), once C is stored, at the end,
// then when each of the first four stages is ready (its loads arrived, past the block barrier), then in stage 1 (wgmma
// kernels): unit 0 dequantized, every unit's wgmma issued, the wgmmas drained}.
#define RTNQ_SWAP_STAMP(v) asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(v)::"memory")
#define RTNQ_SWAP_TRACE_PARAM , unsigned long long* stamp
#define RTNQ_SWAP_TRACE_ARG , stamp
#else
#define RTNQ_SWAP_TRACE_PARAM
#define RTNQ_SWAP_TRACE_ARG
#endif

// How a block multiplies. kSwapMma: mma.sync, one warp per strip. kSwapWg: wgmma, one warpgroup (two at 128
// tokens, splitting the slices). kSwapWgK2: wgmma, two warpgroups splitting each stage's k units (units 0, 2 and
// 1, 3), their partial sums added in the cluster hand-off; cluster split-k at 8 and 16 tokens only, where clusters of
// at most 16 blocks leave slots empty on linears with few tiles (8B o: 16 tiles x 16 = 256 blocks): twice the
// warps per tile. Used for INT8, whose 16-token blocks fit only two to an SM (docs/perf-notes.md).
enum SwapMode : int { kSwapMma = 0, kSwapWg = 1, kSwapWgK2 = 2 };

template <int BITS, int NT, int MODE>
struct SwapSizes {
  // Up to 64 tokens one warpgroup takes all four slices of its strips (4 x NT/2 accumulators a thread). At 128
  // tokens two warpgroups split them (slices 0-1 and 2-3 of the same strips): the accumulators still fit, and
  // each dequantized weight feeds 128 tokens instead of 64 (half the dequantization per product).
  static constexpr int kQ = NT > 64 ? 2 : 4;                      // slices (16 columns) per warp
  static constexpr int kKGroups = MODE == kSwapWgK2 ? 2 : 1;       // warpgroups splitting a stage's k units
  static constexpr int kWarpgroups = kKGroups * 4 / kQ;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kAThreads = kThreads < NT * 8 ? kThreads : NT * 8;  // threads that copy activation chunks
  static constexpr int kMinBlocks = NT == 128 ? 1 : (NT == 64 || MODE == kSwapWgK2) ? 2 : NT == 32 ? 3 : 4;
  static constexpr int kLaneU4 = BITS / 4;                        // 16-byte words per lane per unit
  static constexpr int kWarpWBytes = (kSwapK / 16) * 32 * kLaneU4 * 16;  // one strip's 4 units
  static constexpr int kWBytes = kSwapStrips * kWarpWBytes;
  static constexpr int kABytes = NT * kSwapK * 2;                  // NT tokens x 64 k, 128 bytes a row
  static constexpr int kSBytes = 4 * kSwapCols * 2;                // up to 4 scale rows (group 16)
  static constexpr int kStageBytes = kWBytes + kABytes + kSBytes;
  static constexpr int kStages = 4;
  // + 1 KB: the ring starts at the first 1024-byte boundary of the dynamic shared memory (wgmma's 128-byte swizzle
  // atoms are 1024-byte aligned).
  static constexpr int kSmemBytes = kStages * kStageBytes + 1024;
  // Cluster split-k parks the fp32 tile in the spent ring; 128-token tiles do not fit it (stream-K only).
  static constexpr bool kClusterOk = NT <= 64;
  static_assert(!kClusterOk || NT * kSwapRedStride * 4 <= kStages * kStageBytes, "the parked tile fits the ring");
  static_assert(kWBytes % 1024 == 0 && kStageBytes % 1024 == 0, "every stage's activation tile is 1024-byte aligned");
  static_assert((NT % 16 == 0 && NT >= 16 && NT <= 128) || (NT == 8 && MODE != kSwapMma),
                "token tiles come in ldmatrix.x4 pairs (mma.sync); wgmma also takes one 8-token tile");
  static_assert((NT * 8) % kAThreads == 0, "whole activation chunks per thread");
  static_assert(MODE != kSwapWgK2 || NT <= 64, "k-split warpgroups hold all four slices: up to 64 tokens");
  static_assert(MODE == kSwapWg || kQ == 4, "two slice-splitting warpgroups only with wgmma");
  static_assert(kSmemBytes <= 227 * 1024, "fits the opt-in shared memory of sm_90");
};

// Cluster split-k hand-off (see the top of this file): park this block's accumulators in its own shared memory,
// then, after one cluster barrier, add up share r of the tile from all csplit blocks of the cluster (in rank
// order) and store it to C. Tokens past m are neither parked nor read; columns past n are not stored.
// With two k-split warpgroups (kKG = 2) the second adds its sums to the first's parked ones.
template <int NT, int kThreads, int kQ, int kKG, typename T>
__device__ __forceinline__ void cluster_reduce_store(float (&acc)[kQ][NT / 8][4], unsigned char* smem, const SwapParams& p,
                                                     T* c_g, int cg, int m0, int wstrip, int wg, int g, int t, int tid
                                                     RTNQ_SWAP_TRACE_PARAM) {
  namespace coop = cooperative_groups;
  constexpr int kStride = kSwapRedStride;
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with the ring (wgmma reads included): it becomes the parking space
  float* red = reinterpret_cast<float*>(smem);
  const int valid = min(NT, p.m - m0);  // tokens of this tile inside C
  const int col0 = wstrip * 64 + (kKG == 1 ? 16 * kQ * wg : 0) + g;
  auto park = [&](bool add) {
#pragma unroll
    for (int i = 0; i < NT / 8; ++i) {
      const int tk = 2 * t + 8 * i;
      if (tk < valid) {
#pragma unroll
        for (int q = 0; q < kQ; ++q)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            float* r0 = red + tk * kStride + col0 + 16 * q + 8 * h;
            r0[0] = add ? r0[0] + acc[q][i][2 * h] : acc[q][i][2 * h];
            r0[kStride] = add ? r0[kStride] + acc[q][i][2 * h + 1] : acc[q][i][2 * h + 1];
          }
      }
    }
  };
  if (kKG == 1 || wg == 0) park(false);
  if constexpr (kKG == 2) {
    __syncthreads();
    if (wg == 1) park(true);
  }
  coop::cluster_group cluster = coop::this_cluster();
  cluster.sync();  // release/acquire: every block's parked tile is visible cluster-wide
#ifdef RTNQ_SWAP_TRACE
  RTNQ_SWAP_STAMP(stamp[3]);
#endif
  const int rank = int(cluster.block_rank()), S = p.csplit;
  // Share `rank` of the tile's valid part, in chunks of 4 columns of one token.
  const int chunks = valid * (kSwapCols / 4);
  const int lo = chunks * rank / S, hi = chunks * (rank + 1) / S;
  using Tr = ActTraits<T>;
  for (int ch = lo + tid; ch < hi; ch += kThreads) {
    const int tk = ch / (kSwapCols / 4), lc = (ch % (kSwapCols / 4)) * 4;
    float* local = red + tk * kStride + lc;
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int j = 0; j < S; ++j) {
      const float4 v = *reinterpret_cast<const float4*>(cluster.map_shared_rank(local, j));
      sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
    }
    const int col = cg * kSwapCols + lc;
    T* dst = c_g + int64_t(m0 + tk) * p.n + col;
    const float vals[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (col + e < p.n) dst[e] = Tr::from_float(vals[e]);
  }
#ifdef RTNQ_SWAP_TRACE
  __syncthreads();
  RTNQ_SWAP_STAMP(stamp[4]);
#endif
  // No block leaves (taking its shared memory with it) while another may still read it. Relaxed arrive: the remote
  // loads are complete (their sums are already stored to C), and a release would first wait for those stores to
  // reach memory (H100, 8B layer at m = 1: 55.9 vs 58.0 us; docs/perf-notes.md).
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\nbarrier.cluster.wait.aligned;" ::: "memory");
}

// MODE != kSwapMma: the products run as warpgroup MMAs (wgmma m64nNk16, A = the four warps' dequantized weight
// slices from registers, B = the activation tile through a descriptor), asynchronously, so the next unit's
// dequantization overlaps the tensor cores; kSwapMma: as mma.sync, four slices x NT/8 token tiles per warp.
// kSwapWgK2 runs only as cluster split-k (the dispatcher guarantees csplit > 1).
template <int BITS, typename T, int NT, int MODE>
__global__ void __launch_bounds__(SwapSizes<BITS, NT, MODE>::kThreads, SwapSizes<BITS, NT, MODE>::kMinBlocks)
    gemm_swap_kernel(SwapParams p) {
  using Sz = SwapSizes<BITS, NT, MODE>;
  constexpr bool kWG = MODE != kSwapMma;
  constexpr int kKG = Sz::kKGroups;
  using Tr = ActTraits<T>;
  constexpr int kLaneU4 = Sz::kLaneU4, kStages = Sz::kStages, kTT = NT / 8;  // token tiles
  constexpr int kQ = Sz::kQ, kThreads = Sz::kThreads;
  // Stages in flight ahead of the one in use. 16 tokens and up (wgmma): two, so a stage's last wgmma group may
  // still run while the next stage starts (the refilled stage is the one used two stages back), and the
  // accumulators are waited for only where a block's share of a tile ends (H100, 8B layer at m = 64: 97.6 vs
  // 98.4 us, m = 256 306.0 vs 316.4; docs/perf-notes.md, ninth session; at m = 16, once the 16-token tiles no
  // longer deferred their scales, 56.2 vs 57.1-57.3, tenth session). The waits on the epilogue path and after the
  // loop keep ptxas from adding its own at every stage end (warning C7517), which had made the same change gain
  // nothing before. 8 tokens keep three ahead and drain: the deferred scales read the partial sums at group ends.
  constexpr bool kNoDrain = kWG && NT >= 16;
  constexpr int kAhead = kNoDrain ? kStages - 2 : kStages - 1;
  constexpr bool kDeferOk = kWG && NT == 8 && BITS == 4;
  static_assert(!kDeferOk || kQ == 4, "deferred scales: every warpgroup holds all four slices");
  const int spg = kDeferOk ? p.group_stages : 0;  // stages per group, deferred scales; 0: scaled weights
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  __shared__ int s_is_last;

  asm volatile("griddepcontrol.launch_dependents;");
#ifdef RTNQ_SWAP_TRACE
  unsigned long long stamp[6] = {}, stage_stamp[4] = {}, unit_stamp[3] = {};
  RTNQ_SWAP_STAMP(stamp[0]);
#endif

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  // Warp -> (strip of the block, warpgroup); warpgroup wg takes slices wg * kQ .. wg * kQ + kQ - 1.
  const int wstrip = warp & 3, wg = warp >> 2;
  // This block's iterations: the r-th k range of tile blockIdx.x / csplit (cluster split-k), or its stripe of
  // the whole stream (stream-K).
  int it_begin, it_end;
  if (p.csplit > 1) {
    const int tile = int(blockIdx.x) / p.csplit, r = int(blockIdx.x) % p.csplit;
    it_begin = tile * p.kbs + r * p.kbs / p.csplit;
    it_end = tile * p.kbs + (r + 1) * p.kbs / p.csplit;
  } else {
    it_begin = int(int64_t(blockIdx.x) * p.total_iters / gridDim.x);
    it_end = int(int64_t(blockIdx.x + 1) * p.total_iters / gridDim.x);
  }
  const int n_iters = it_end - it_begin;
  const int KB = p.kbs;

  // Weights read once (one m tile) are marked evict-first; otherwise the hint keeps L2's normal policy. Every
  // weight copy carries a hint, so there is one copy instruction per chunk, not one of two under a predicate.
  uint64_t policy;
  if (p.evict_first) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  else asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(policy));
  const T* a_g = static_cast<const T*>(p.a);
  const T* s_g = static_cast<const T*>(p.scales);
  const int64_t strip_u4 = int64_t(p.ku) * 32 * kLaneU4;  // one strip's 16-byte chunks

  // Work cursor: k batch fastest, then the m tile, then the column group. The loader keeps this thread's source
  // addresses (Streams below) and moves them by a constant per stage; only where a tile starts (once per block
  // under cluster split-k) are they computed from the cursor. Computing them every stage, with a division for the
  // scale group, took ~40% of a stage's instructions (ncu, 8B gate_up at m = 64); the streams made the 8B layer
  // 52.8 vs 56.2 us at m = 1 and 99.6 vs 107.8 at m = 64 (H100, docs/perf-notes.md).
  struct Cursor {
    int kb, mt, cg;
  };
  auto next_tile = [&](Cursor& c) {
    c.kb = 0;
    if (++c.mt == p.m_tiles) c.mt = 0, ++c.cg;
  };
  auto advance = [&](Cursor& c) {
    if (++c.kb == KB) next_tile(c);
  };
  const Cursor start{it_begin % KB, (it_begin / KB) % p.m_tiles, (it_begin / KB) / p.m_tiles};
  const uint32_t ring_s = smem_u32(smem);
  // Load streams: this thread's source addresses for the stage at cursor c. Weights: one 16-byte chunk per lane
  // and copy. Scales: row r holds the group of unit r << unit_shift, 32 chunks of 8 scales per row; a stage's
  // first row is group sg, which moves by scale_rows every group_len stages (groups of 16 and 32: every stage; 64
  // and up: group / 64 stages; per channel: never within a tile). Activations: rows a_row0 + kRowStep i_, chunk
  // a_ch (NT rows x 8 chunks of 8 elements); chunk c of row r lands at c ^ (r & 7) (the 128-byte swizzle: ldmatrix
  // and wgmma read it).
  constexpr int kRowStep = Sz::kAThreads / 8, kARows = NT / kRowStep;
  const int a_row0 = tid >> 3, a_ch = tid & 7;
  const int group_len = p.group >= kSwapK ? p.group / kSwapK : 1;
  const int s_row = tid >> 5;
  struct Streams {
    Cursor c;
    const uint4* w;  // this lane's first weight chunk of the stage
    const T* a;      // row a_row0 of the tile, this thread's chunk of the stage
    int sg, s_left;  // the stage's first scale group, stages left before it moves
    unsigned rows;   // bit i_: activation row a_row0 + kRowStep i_ is inside A
    bool w_on, s_on;
  };
  auto at_tile = [&](Streams& st, Cursor c) {  // the start of batch c.kb of tile (c.mt, c.cg)
    st.c = c;
    const int strip = c.cg * kSwapStrips + wstrip;
    st.w_on = wg == 0 && strip < p.strips;  // one copy of each strip's weights, read by every warpgroup
    st.w = p.w + strip * strip_u4 + c.kb * (Sz::kWarpWBytes / 16) + lane;
    st.s_on = tid < p.scale_rows * 32 && c.cg * kSwapStrips + (lane >> 3) < p.strips;
    st.sg = p.group >= kSwapK ? c.kb / group_len : c.kb * p.scale_rows;
    st.s_left = group_len - c.kb % group_len;
    const int gm0 = c.mt * NT + a_row0;
    st.a = a_g + int64_t(gm0) * p.k + c.kb * kSwapK + a_ch * 8;
    st.rows = 0;
#pragma unroll
    for (int i_ = 0; i_ < kARows; ++i_)
      if (gm0 + kRowStep * i_ < p.m) st.rows |= 1u << i_;
  };
  auto step = [&](Streams& st) {  // on to the next stage
    if (st.c.kb + 1 == KB) {
      Cursor c = st.c;
      next_tile(c);
      at_tile(st, c);
    } else {
      ++st.c.kb;
      st.w += Sz::kWarpWBytes / 16;
      st.a += kSwapK;
      if (--st.s_left == 0) st.sg += p.scale_rows, st.s_left = group_len;
    }
  };
  auto issue_w = [&](const Streams& st, int stage) {
    const uint32_t base = ring_s + stage * Sz::kStageBytes;
    if (st.w_on) {
      const uint32_t dst = base + wstrip * Sz::kWarpWBytes + lane * 16;
#pragma unroll
      for (int i = 0; i < Sz::kWarpWBytes / 16 / 32; ++i) cp_async16_hint(dst + 32 * 16 * i, st.w + 32 * i, policy);
    }
    if (st.s_on) {
      const int grp = min(st.sg + s_row, p.num_groups - 1);
      cp_async16(base + Sz::kWBytes + Sz::kABytes + s_row * kSwapCols * 2 + lane * 16,
                 s_g + int64_t(grp) * p.n_pad + st.c.cg * kSwapCols + lane * 8);
    }
  };
  auto issue_a = [&](const Streams& st, int stage) {
    if (Sz::kAThreads < kThreads && tid >= Sz::kAThreads) return;
    const uint32_t dst = ring_s + stage * Sz::kStageBytes + Sz::kWBytes + (a_row0 * 8 + (a_ch ^ (a_row0 & 7))) * 16;
    const bool k_ok = st.c.kb * kSwapK + a_ch * 8 < p.k;  // k % 8 == 0: a chunk is all in or all out
    const T* src = st.a;
#pragma unroll
    for (int i_ = 0; i_ < kARows; ++i_) {
      // Row a_row0 + kRowStep i_ has the same (row & 7) as a_row0: the same swizzled chunk position.
      const bool ok = k_ok && (st.rows >> i_ & 1u);
      cp_async16_zfill(dst + kRowStep * i_ * 8 * 16, ok ? src : a_g, ok ? 16 : 0);
      src += int64_t(kRowStep) * p.k;
    }
  };

  float acc[kQ][kTT][4];
#pragma unroll
  for (int q = 0; q < kQ; ++q)
#pragma unroll
    for (int i = 0; i < kTT; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[q][i][e] = 0.f;
  // Deferred scales: this group's unscaled partial sums; a group's first wgmma overwrites them (scale-d clear).
  float pacc[kQ][kTT][4];  // (never touched, so no registers, where deferred scales are off)
  bool fresh = true;  // the next stage starts a group (or this block's segment)
  int g_pos = 0;      // deferred scales: stages of the current group already multiplied (a counter, not a %)
  if constexpr (kDeferOk)
    if (spg > 0) g_pos = start.kb % spg;

  // The loader's position (the next stage to load), and the prologue's own activation stream: the weights and
  // scales of the first stages go out before griddepcontrol.wait, their activations after it.
  Streams ld;
  at_tile(ld, start);
  Streams pro = ld;
#pragma unroll
  for (int s = 0; s < kAhead; ++s)
    if (s < n_iters) issue_w(ld, s), step(ld);
  asm volatile("griddepcontrol.wait;" ::: "memory");
#ifdef RTNQ_SWAP_TRACE
  RTNQ_SWAP_STAMP(stamp[1]);
#endif
#pragma unroll
  for (int s = 0; s < kAhead; ++s) {
    if (s < n_iters) issue_a(pro, s), step(pro);
    cp_async_commit();
  }

  T* c_g = static_cast<T*>(p.c);
  int seg_begin = 0;
  Cursor cur = start;  // consumer position
  int stage = 0, ld_stage = kAhead;
  for (int it = 0; it < n_iters; ++it) {
    cp_async_wait<kAhead - 1>();
    // wgmma reads the activation tile through the async proxy, and cp.async wrote it through the generic one: each
    // thread fences its own copies before the barrier. (Unfenced, every check passed too, but the memory model
    // does not promise it. H100, 8B layer: +0.4-1.7% at m = 1-32, level at 64; docs/perf-notes.md.)
    if constexpr (kWG) fence_proxy_async_smem();
    __syncthreads();  // stage `it` is visible; everyone is done with the stage refilled next
#ifdef RTNQ_SWAP_TRACE
    if (it < 4) RTNQ_SWAP_STAMP(stage_stamp[it]);
#endif
    const unsigned char* base = smem + stage * Sz::kStageBytes;
    if (++stage == kStages) stage = 0;

    const int cg = cur.cg;
    const int strip = cg * kSwapStrips + wstrip;
    const bool active = strip < p.strips;  // the last column group may hold only 2 strips (n_pad % 256 == 128)
    const uint4* w_s = reinterpret_cast<const uint4*>(base + wstrip * Sz::kWarpWBytes);
    const uint32_t a_s = smem_u32(base + Sz::kWBytes);
    const uint4* s_s = reinterpret_cast<const uint4*>(base + Sz::kWBytes + Sz::kABytes);
    // Unit u's A fragments (this warp's slices wg * kQ + q of its strip): word wg * kQ + q dequantized, scaled,
    // and put in A-fragment order {b0, b2, b1, b3} (see the top of this file).
    // Scale row r of this stage, this lane's 8 scales: word q = slice q, low half column g, high half g + 8.
    auto scale_row = [&](int r) { return s_s[(r * kSwapCols + wstrip * 64 + g * 8) / 8]; };
    // A unit's raw words and scales, read from shared memory (load_raw), then dequantized into A fragments
    // (frags_from); a_frags does both at once (mma.sync; wgmma reads a unit ahead, see stage_mma). scale (a
    // constant at every call): scale the weights here, or leave them as integers (deferred scales).
    struct Raw {
      uint4 w[kLaneU4];
      uint4 s;
    };
    auto load_raw = [&](int u, Raw& r, bool scale) {
#pragma unroll
      for (int c = 0; c < kLaneU4; ++c) r.w[c] = w_s[(u * 32 + lane) * kLaneU4 + c];
      r.s = make_uint4(0, 0, 0, 0);
      if (scale) r.s = scale_row(u >> p.unit_shift);
    };
    auto frags_from = [&](const Raw& r, uint32_t (&af)[kQ][4], bool scale) {
      const uint32_t s_all[4] = {r.s.x, r.s.y, r.s.z, r.s.w};
      const uint32_t* w_all = reinterpret_cast<const uint32_t*>(r.w);
      // This warpgroup's slices (selects, not a run-time index into registers, which would go to local memory).
      constexpr int kWordsPerSlice = BITS / 4;
      uint32_t words[kQ * kWordsPerSlice], s_words[kQ];
#pragma unroll
      for (int q = 0; q < kQ; ++q) {
        s_words[q] = kQ == 4 || wg == 0 ? s_all[q] : s_all[kQ + q];
#pragma unroll
        for (int c = 0; c < kWordsPerSlice; ++c)
          words[q * kWordsPerSlice + c] =
              kQ == 4 || wg == 0 ? w_all[q * kWordsPerSlice + c] : w_all[(kQ + q) * kWordsPerSlice + c];
      }
#pragma unroll
      for (int q = 0; q < kQ; ++q) {
        uint32_t b[4];
        if (scale) dequant_slice_scaled<BITS, T>(words, q, s_words[q], b);
        else dequant_slice<BITS, T>(words, q, b);
        af[q][0] = b[0];
        af[q][1] = b[2];
        af[q][2] = b[1];
        af[q][3] = b[3];
      }
    };
    auto a_frags = [&](int u, uint32_t (&af)[kQ][4], bool scale) {
      Raw r;
      load_raw(u, r, scale);
      frags_from(r, af, scale);
    };
    // Word prefetch: the first unit's words are read before this thread's copies for a later stage queue up ahead
    // of them in the memory pipeline; stage_mma reads each later unit's while the previous unit's wgmmas run.
    Raw raw0;
    if constexpr (kWG) load_raw(kKG == 1 ? 0 : wg, raw0, spg == 0);
    if (it + kAhead < n_iters) {
      issue_w(ld, ld_stage);
      issue_a(ld, ld_stage);
      step(ld);
    }
    cp_async_commit();
    if (++ld_stage == kStages) ld_stage = 0;
    if constexpr (kWG) {
      // Every warp takes part (wgmma is warpgroup-wide); an inactive warp's rows are garbage and never stored.
      // Fragments are double-buffered: unit u writes buffer u & 1 once the group of unit u - 2 has completed.

      // With k-split warpgroups (kKG = 2) warpgroup wg takes units wg and wg + 2 of the stage.
      const uint64_t desc0 = wgmma_desc_k128(a_s);
      uint32_t afb[2][kQ][4];
      auto stage_mma = [&](bool defer) {  // a constant at every call
        Raw raw[2] = {raw0, {}};
#pragma unroll
        for (int uu = 0; uu < kSwapK / 16 / kKG; ++uu) {
          const int u = kKG == 1 ? uu : uu * kKG + wg;
          if (uu >= 2 || (kNoDrain && uu >= 1)) wgmma_wait<1>();  // the group of unit u - 2 used this buffer
          frags_from(raw[uu & 1], afb[uu & 1], !defer);
#ifdef RTNQ_SWAP_TRACE
          if (it == 1 && uu == 0) RTNQ_SWAP_STAMP(unit_stamp[0]);
#endif
          // No other instruction touches the accumulators between the chained wgmmas: any use of them while a
          // group is pending makes ptxas insert a full wait there (warning C7517), which serialises the pipeline.
          wgmma_fence();
#pragma unroll
          for (int q = 0; q < kQ; ++q) {
            if (defer) Wgmma<T, NT>::run(pacc[q], afb[uu & 1][q], desc0 + 2 * u, uu == 0 && fresh ? 0 : 1);
            else Wgmma<T, NT>::run(acc[q], afb[uu & 1][q], desc0 + 2 * u);
          }
          wgmma_commit();
          const int un = kKG == 1 ? uu + 1 : (uu + 1) * kKG + wg;  // the next unit of this warpgroup
          if (uu + 1 < kSwapK / 16 / kKG) load_raw(un, raw[(uu + 1) & 1], !defer);
        }
#ifdef RTNQ_SWAP_TRACE
        if (it == 1) RTNQ_SWAP_STAMP(unit_stamp[1]);
#endif
        if constexpr (kNoDrain) {
          wgmma_wait<1>();  // the previous stage's groups are done: its tile may be refilled after the next barrier
        } else {
          wgmma_wait<0>();  // this stage's activation tile is refilled right after the next barrier
#ifdef RTNQ_SWAP_TRACE
          if (it == 1) RTNQ_SWAP_STAMP(unit_stamp[2]);
#endif
#pragma unroll
          for (int q = 0; q < kQ; ++q) {
            if (defer) wgmma_pin(pacc[q]);
            else wgmma_pin(acc[q]);
          }
        }
      };
      // (if constexpr: elsewhere spg is a constant 0, and the front end warns about the % in a dead branch)
      if constexpr (kDeferOk) {
        if (spg > 0) {
          stage_mma(true);
          // Scale the group's partial sums into the accumulators at the end of the group, of the tile's k range, or
          // of this block's segment. Lane (g, t) holds rows (columns) g and g + 8 of slice q: the low and high half
          // of the stage's scale word q (its one scale row; see a_frags).
          const bool group_end = ++g_pos == spg || cur.kb + 1 == KB;
          if (group_end) g_pos = 0;
          fresh = group_end || it == n_iters - 1;
          if (fresh) fold_group_scales<Tr>(acc, pacc, scale_row(0));
        } else {
          stage_mma(false);
        }
      } else {
        stage_mma(false);
      }
    } else if (active) {
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
        uint32_t af[kQ][4];
        a_frags(u, af, true);
#pragma unroll
        for (int q = 0; q < kQ; ++q)
#pragma unroll
          for (int i = 0; i < kTT; ++i) mma_16816<T>(acc[q][i], af[q], bfr[i][0], bfr[i][1]);
      }
    }

    // End of this block's share of a tile: store or hand on (block-uniform condition).
    const int tile = cur.cg * p.m_tiles + cur.mt, m0 = cur.mt * NT;
    advance(cur);
    const bool tile_done = cur.kb == 0;
    if (!tile_done && it != n_iters - 1) continue;
    if constexpr (kNoDrain) {
      wgmma_wait<0>();
#pragma unroll
      for (int q = 0; q < kQ; ++q) wgmma_pin(acc[q]);
    }
#ifdef RTNQ_SWAP_TRACE
    RTNQ_SWAP_STAMP(stamp[2]);
#endif
    if constexpr (Sz::kClusterOk) {
      // Cluster split-k: this block's only segment is done (every block gets here once).
      if (MODE == kSwapWgK2 || p.csplit > 1) {
        cluster_reduce_store<NT, kThreads, kQ, kKG>(acc, smem, p, c_g, cg, m0, wstrip, wg, g, t,
                                                    tid RTNQ_SWAP_TRACE_ARG);
        break;
      }
    }
    const int covered = it - seg_begin + 1;
    seg_begin = it + 1;
    // This lane's fragment positions: columns col_base + 16 q + 8 h, tokens tok_base + 8 i (+1). Offsets from
    // two base pointers stay 32-bit (n * 64 and m * 256 fit), so the address arithmetic costs few registers.
    const int col_base = strip * 64 + 16 * kQ * wg + g, tok_base = m0 + 2 * t;
    float* ws_b = p.ws + int64_t(col_base) * p.m + tok_base;  // transposed workspace: [col][tok]
    T* c_b = c_g + int64_t(tok_base) * p.n + col_base;
    const bool pairs = (p.m & 1) == 0;  // float2 workspace accesses need col * m + tok even (tok is even)
    // Fragment pair (q, i, h): accumulators acc[q][i][2h] (column col_base + 16 q + 8 h, token tok_base + 8 i)
    // and acc[q][i][2h + 1] (the next token); exists(): its first element is inside C, tok1(): so is its second;
    // slot(): its workspace address. slice_pairs(q, f) calls f(i, h) for each pair of slice q that exists.
    auto exists = [&](int q, int i, int h) { return col_base + 16 * q + 8 * h < p.n && tok_base + 8 * i < p.m; };
    auto tok1 = [&](int i) { return tok_base + 8 * i + 1 < p.m; };
    auto slot = [&](int q, int i, int h) { return ws_b + (16 * q + 8 * h) * p.m + 8 * i; };
    auto slice_pairs = [&](int q, auto&& f) {
#pragma unroll
      for (int i = 0; i < kTT; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          if (exists(q, i, h)) f(i, h);
    };
    if (covered != KB) {
      if (active) {
#pragma unroll
        for (int q = 0; q < kQ; ++q)
          slice_pairs(q, [&](int i, int h) {
            float* dst = slot(q, i, h);
            if (pairs) {
              atomicAdd(reinterpret_cast<float2*>(dst), make_float2(acc[q][i][2 * h], acc[q][i][2 * h + 1]));
            } else {
              atomicAdd(dst, acc[q][i][2 * h]);
              if (tok1(i)) atomicAdd(dst + 1, acc[q][i][2 * h + 1]);
            }
          });
      }
      // Handed on: the accumulators restart from zero (the last block reloads the tile's sums into them). Zeroing
      // here, not later, ends their live range at the atomics (keeping them live cost ~50 spilled registers).
#pragma unroll
      for (int q = 0; q < kQ; ++q)
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
#ifdef RTNQ_SWAP_TRACE
      RTNQ_SWAP_STAMP(stamp[3]);
#endif
      if (!last) continue;
      // The last block of the tile: every warp reads back the finished sums of its own fragment positions, a
      // slice at a time (its loads independent: one L2 round trip per slice, not one per element), and clears
      // them.
      __threadfence();  // everyone else's partial sums are visible once their counts are
      if (active) {
#pragma unroll
        for (int q = 0; q < kQ; ++q) {
          slice_pairs(q, [&](int i, int h) {
            const float* src = slot(q, i, h);
            if (pairs) {
              const float2 v = __ldcg(reinterpret_cast<const float2*>(src));
              acc[q][i][2 * h] = v.x, acc[q][i][2 * h + 1] = v.y;
            } else {
              acc[q][i][2 * h] = __ldcg(src);
              if (tok1(i)) acc[q][i][2 * h + 1] = __ldcg(src + 1);
            }
          });
          slice_pairs(q, [&](int i, int h) {
            float* dst = slot(q, i, h);
            if (pairs) {
              __stcg(reinterpret_cast<float2*>(dst), make_float2(0.f, 0.f));
            } else {
              __stcg(dst, 0.f);
              if (tok1(i)) __stcg(dst + 1, 0.f);
            }
          });
        }
      }
      if (tid == 0) *counter = 0;
    }
#ifdef RTNQ_SWAP_TRACE
    RTNQ_SWAP_STAMP(stamp[4]);
#endif
    // The whole tile's sums are in this block's registers: store C, clear the accumulators (pair by pair, as they
    // are stored: clearing them after the loop cost the 128-token instances 20 more registers).
    if (active) {
#pragma unroll
      for (int q = 0; q < kQ; ++q)
#pragma unroll
        for (int i = 0; i < kTT; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            if (exists(q, i, h)) {
              T* dst = c_b + (8 * i) * p.n + 16 * q + 8 * h;
              dst[0] = Tr::from_float(acc[q][i][2 * h]);
              if (tok1(i)) dst[p.n] = Tr::from_float(acc[q][i][2 * h + 1]);
            }
            acc[q][i][2 * h] = acc[q][i][2 * h + 1] = 0.f;
          }
    }
  }
  if constexpr (kNoDrain) wgmma_wait<0>();  // (none is pending here, but ptxas cannot tell, and would add one)
  cp_async_wait<0>();  // nothing may be in flight into shared memory when the block exits
#ifdef RTNQ_SWAP_TRACE
  RTNQ_SWAP_STAMP(stamp[5]);
  if (tid == 0 && p.trace != nullptr) {
    unsigned smid;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
    unsigned long long* r = p.trace + 1 + atomicAdd(p.trace, 1ull) * kSwapTraceWords;
    r[0] = reinterpret_cast<unsigned long long>(p.w);
    r[1] = blockIdx.x | (static_cast<unsigned long long>(smid) << 32);
    r[2] = unsigned(p.csplit);
    for (int i = 0; i < 6; ++i) r[3 + i] = stamp[i];
    for (int i = 0; i < 4; ++i) r[9 + i] = stage_stamp[i];
    for (int i = 0; i < 3; ++i) r[13 + i] = unit_stamp[i];
  }
#endif
}

template <int BITS, typename T, int NT, int MODE>
cudaError_t swap_smem_attr() {
  static const cudaError_t e = cudaFuncSetAttribute(gemm_swap_kernel<BITS, T, NT, MODE>,
                                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    padded_smem_bytes(SwapSizes<BITS, NT, MODE>::kSmemBytes, 1));
  return e;
}

template <int BITS, typename T, int NT, int MODE>
cudaError_t launch_gemm_swap(const SwapParams& p, int blocks, bool pdl, int per_sm, cudaStream_t stream) {
  using Sz = SwapSizes<BITS, NT, MODE>;
  if (const cudaError_t e = swap_smem_attr<BITS, T, NT, MODE>(); e != cudaSuccess) return e;
  const LaunchConfig lc(blocks, Sz::kThreads, padded_smem_bytes(Sz::kSmemBytes, per_sm), stream, pdl, p.csplit);
  return launch_with(gemm_swap_kernel<BITS, T, NT, MODE>, lc, p);
}

template <int BITS, typename T, int NT, int MODE>
int gemm_swap_blocks_per_sm() {
  static std::atomic<int> cache{0};
  int blocks = cache.load(std::memory_order_relaxed);
  if (blocks == 0) {
    if (swap_smem_attr<BITS, T, NT, MODE>() != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gemm_swap_kernel<BITS, T, NT, MODE>, SwapSizes<BITS, NT, MODE>::kThreads,
                                                      SwapSizes<BITS, NT, MODE>::kSmemBytes) != cudaSuccess) {
      (void)cudaGetLastError();
      blocks = 1;
    }
    blocks = blocks > 0 ? blocks : 1;
    cache.store(blocks, std::memory_order_relaxed);
  }
  return blocks;
}

// How many clusters of `size` blocks the card holds at once with at most `per_sm` blocks to an SM (0: as many as
// fit); 0 if none, or the query fails; cached per size and per_sm. The dispatcher asks before every cluster
// launch, so this also allows sizes above the portable 8 first.
template <int BITS, typename T, int NT, int MODE>
int gemm_swap_max_clusters(int size, int per_sm) {
  static std::atomic<int> cache[kSwapMaxCluster + 1][kSwapMaxPerSm + 1] = {};
  if (size < 2 || size > kSwapMaxCluster || !SwapSizes<BITS, NT, MODE>::kClusterOk) return 0;
  if (per_sm < 0 || per_sm > kSwapMaxPerSm) return 0;
  static const cudaError_t non_portable =
      cudaFuncSetAttribute(gemm_swap_kernel<BITS, T, NT, MODE>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  if (non_portable != cudaSuccess && size > 8) return 0;
  int n = cache[size][per_sm].load(std::memory_order_relaxed);
  if (n == 0) {
    using Sz = SwapSizes<BITS, NT, MODE>;
    if (swap_smem_attr<BITS, T, NT, MODE>() == cudaSuccess)
      n = max_active_clusters(gemm_swap_kernel<BITS, T, NT, MODE>, size, Sz::kThreads,
                              padded_smem_bytes(Sz::kSmemBytes, per_sm));
    else
      (void)cudaGetLastError();
    n = n > 0 ? n : -1;  // -1: asked, none
    cache[size][per_sm].store(n, std::memory_order_relaxed);
  }
  return n > 0 ? n : 0;
}

#define RTNQ_SWAP_INSTANCE(PREFIX, BITS, T, NT, MODE)                                                              \
  PREFIX template cudaError_t launch_gemm_swap<BITS, T, NT, MODE>(const SwapParams&, int, bool, int, cudaStream_t); \
  PREFIX template int gemm_swap_blocks_per_sm<BITS, T, NT, MODE>();                                                   \
  PREFIX template int gemm_swap_max_clusters<BITS, T, NT, MODE>(int, int);

#define RTNQ_SWAP_INSTANCES_MODE(PREFIX, T, MODE) \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 16, MODE)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 32, MODE)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 64, MODE)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 16, MODE)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 32, MODE)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 64, MODE)
#define RTNQ_SWAP_INSTANCES_FOR(PREFIX, T)          \
  RTNQ_SWAP_INSTANCES_MODE(PREFIX, T, kSwapMma)     \
  RTNQ_SWAP_INSTANCES_MODE(PREFIX, T, kSwapWg)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 8, kSwapWg)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 8, kSwapWg)      \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 8, kSwapWgK2)    \
  RTNQ_SWAP_INSTANCE(PREFIX, 4, T, 128, kSwapWg)    \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 128, kSwapWg)    \
  RTNQ_SWAP_INSTANCE(PREFIX, 8, T, 16, kSwapWgK2)

}  // namespace rtnq::cuda::detail
