// Launcher of the fused INT4/INT8 x FP16/BF16 kernel: argument checks, m-tile choice, split-k sizing, workspace.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/cuda-error.h"
#include "cuda/gemm-decode-kernel.cuh"
#include "cuda/gemm-kernel.cuh"
#include "cuda/gemm-strip-kernel.cuh"
#include "cuda/gemm-swap-kernel.cuh"
#include "cuda/gemm-wide-kernel.cuh"
#include "cuda/gemm.h"
#include "cuda/wide-split.h"

namespace rtnq::cuda {
namespace detail {

RTNQ_GEMM_INSTANCES_FOR(extern, half)
RTNQ_GEMM_INSTANCES_FOR(extern, __nv_bfloat16)
RTNQ_DECODE_INSTANCES_FOR(extern, half)
RTNQ_DECODE_INSTANCES_FOR(extern, __nv_bfloat16)
RTNQ_SWAP_INSTANCES_FOR(extern, half)
RTNQ_SWAP_INSTANCES_FOR(extern, __nv_bfloat16)
RTNQ_STRIP_INSTANCES_FOR(extern, half)
RTNQ_STRIP_INSTANCES_FOR(extern, __nv_bfloat16)
RTNQ_WIDE_INSTANCES_FOR(extern, half, kWideTokensBig)
RTNQ_WIDE_INSTANCES_FOR(extern, __nv_bfloat16, kWideTokensBig)
RTNQ_WIDE_INSTANCES_FOR(extern, half, kWideTokensSmall)
RTNQ_WIDE_INSTANCES_FOR(extern, __nv_bfloat16, kWideTokensSmall)

namespace {
thread_local std::string t_error;
#ifdef RTNQ_SWAP_TRACE
unsigned long long* g_swap_trace = nullptr;
#endif
}

cudaError_t fail(cudaError_t code, std::string message) {
  t_error = std::move(message);
  return code;
}
void clear_error() { t_error.clear(); }
cudaError_t check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail(e, std::string(what) + ": launch failed: " + cudaGetErrorString(e));
  return cudaSuccess;
}

namespace {

// 16-row tiles (decoding) up to this m; the configuration measured and checked on an H100 (docs/perf-notes.md).
constexpr int64_t kSmallTileMaxM = 16;
// Swapped-operand kernel, auto: the longest k range per warpgroup (64-deep batches) that cluster split-k takes,
// at 8- and 16-token tiles (any cluster size; up to 16 in clusters of at most 4) and at larger ones (see
// auto_cluster).
constexpr int64_t kClusterMaxBatches16 = 4;
constexpr int64_t kClusterMaxBatches = 32;
// INT4 at 16 tokens where that rule leaves stream-K: clusters of up to 16 batches a block, the smallest size whose
// blocks fill at least 1.9 per SM (see auto_cluster).
constexpr int64_t kClusterLongBatches16 = 16;
constexpr int64_t kClusterLongFillPct16 = 190;
// INT4 at 8 tokens where the first rule leaves stream-K: clusters of 16, 8 or 4 blocks with up to 16 batches a
// block, where the grid stays spread (see auto_cluster).
constexpr int64_t kClusterLongBatches8 = 16;
// The most blocks per SM (x 100) that a cluster grid of INT4 8- or 16-token tiles may have and still spread over
// the SMs (padded_smem_bytes pads for 2-3 a SM); above it the clusters pack, and the small calls slow down.
constexpr int64_t kClusterSpreadPct = 250;
// INT4 up to 16 tokens: a packed grid of clusters of 8 or more takes half the size if a block then has at most
// this many batches (see auto_cluster).
constexpr int64_t kClusterHalfMaxBatches = 8;

int sm_count() {
  static const int count = [] {
    int dev = 0, c = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return 132;
    }
    return c;
  }();
  return count;
}

// Whether `tiles` clusters of `size` blocks stay within kClusterSpreadPct blocks a SM, where the spread padding
// (padded_smem_bytes) can keep them apart; the INT4 small-tile rules of auto_cluster prefer such grids.
bool cluster_grid_spreads(int64_t tiles, int size) {
  return tiles * size * 100 <= int64_t(sm_count()) * kClusterSpreadPct;
}

// A split-k workspace: `count` arrival counters (padded to 256 bytes), then the fp32 partial sums of the whole
// [m, n] output. The layout every fused kernel uses; gemm_workspace_bytes sizes it for the largest call.
size_t split_workspace_bytes(int64_t count, int64_t m, int64_t n) {
  return (size_t(count) * 4 + 255) / 256 * 256 + size_t(m) * size_t(n) * 4;
}
struct SplitWorkspace {
  int* counters;
  float* partials;
  bool fits;  // the caller's workspace holds both (else the kernel must not split k)
};
SplitWorkspace carve_workspace(void* ws_ptr, size_t ws_bytes, int64_t count, int64_t m, int64_t n) {
  const size_t counter_bytes = (size_t(count) * 4 + 255) / 256 * 256;
  return {static_cast<int*>(ws_ptr),
          ws_ptr ? reinterpret_cast<float*>(static_cast<char*>(ws_ptr) + counter_bytes) : nullptr,
          ws_ptr != nullptr && ws_bytes >= split_workspace_bytes(count, m, n)};
}

// The wide kernel's stream-K slots: one parked fp32 tile (token tile x 256 columns) per block.
int64_t wide_slot_floats(int64_t blocks, int tokens) { return blocks * tokens * kWideCols; }

// The call's operands and shape, as every fused kernel's parameters (decode, swapped-operand, strip, wide) name
// them, from the validated call.
template <typename P>
void set_call_fields(P& p, const GemmParams& base, int64_t m) {
  p.a = base.a;
  p.w = base.w;
  p.scales = base.scales;
  p.c = base.c;
  p.m = int(m);
  p.n = base.n;
  p.k = base.k;
  p.n_pad = base.n_pad;
  p.num_groups = base.num_groups;
  p.ku = base.k_pad / 16;
}

// The fields the decode and swapped-operand kernels' parameters share: the call's, the group and the workspace.
template <typename P>
P fused_params(const GemmParams& base, int64_t m, const SplitWorkspace& ws) {
  P p{};
  set_call_fields(p, base, m);
  p.ws = ws.partials;
  p.counters = ws.counters;
  p.group = base.group;
  return p;
}

template <int BITS, typename T>
cudaError_t dispatch_m(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr, int max_splits,
                       int m_tile_rows, cudaStream_t stream) {
  // m <= kSmallTileMaxM: 16-row tiles; larger m: 64-row tiles (one block per SM: 128 accumulators per thread).
  // Forcing 16-row tiles at larger m re-reads each weight tile once per m tile (from L2: the m tiles of one n
  // tile are neighbours in the stream-K order).
  const bool small = m_tile_rows == 16 || (m_tile_rows == 0 && m <= kSmallTileMaxM);
  const int rows = small ? 16 : 64;
  const int64_t m_tiles = (m + rows - 1) / rows;
  const int64_t n_tiles = base.n_pad / kTileN;
  const int64_t tiles = m_tiles * n_tiles;
  const int blocks_per_sm = small ? gemm_quant_blocks_per_sm<BITS, T, 1>() : gemm_quant_blocks_per_sm<BITS, T, 4>();
  const int64_t slots = int64_t(sm_count()) * blocks_per_sm;
  const int64_t total = tiles * base.k_tiles;
  if (total > INT32_MAX)  // the kernel walks iterations in 32-bit counters
    return fail(cudaErrorInvalidValue, "gemm_quant: m = " + std::to_string(m) + " is too large");
  // Stream-K: one stripe per resident block. max_splits caps how many blocks share a tile; 1 (or a workspace
  // too small for the partial sums) gives each block whole tiles, which needs no workspace at all.
  int64_t grid = std::min(slots, total);
  if (max_splits > 0) grid = std::min(grid, tiles * max_splits);
  const SplitWorkspace ws = carve_workspace(ws_ptr, ws_bytes, tiles, m, base.n);
  // Whole tiles only (stripes of exactly k_tiles iterations): one block per tile, no workspace touched.
  if (max_splits == 1 || !ws.fits) grid = tiles;
  if (grid > INT32_MAX) return fail(cudaErrorInvalidValue, "gemm_quant: m = " + std::to_string(m) + " is too large");
  GemmParams p = base;
  p.m = int(m);
  p.m_tiles = int(m_tiles);
  p.total_iters = total;
  p.evict_first = m_tiles == 1 ? 1 : 0;
  p.counters = ws.counters;
  p.ws = ws.partials;
  const dim3 grid3(unsigned(grid), 1, 1);
  const cudaError_t e = small ? launch_gemm_quant<BITS, T, 1>(p, grid3, stream) : launch_gemm_quant<BITS, T, 4>(p, grid3, stream);
  if (e != cudaSuccess) return fail(e, std::string("gemm_quant: launch failed: ") + cudaGetErrorString(e));
  return cudaSuccess;
}

template <int BITS, typename T, bool kWide>
cudaError_t dispatch_decode_as(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr, const GemmOptions& opt,
                            cudaStream_t stream) {
  using Sz = DecodeSizes<BITS>;
  const int64_t strips = base.n_pad / 64;
  // Arrival counters: one per 64-column strip.
  const SplitWorkspace ws = carve_workspace(ws_ptr, ws_bytes, strips, m, base.n);
  DecodeParams p = fused_params<DecodeParams>(base, m, ws);
  const int64_t per_strip = p.ku / Sz::kU;  // batches per strip
  const int64_t batches = strips * per_strip;
  if (batches > INT32_MAX) return fail(cudaErrorInvalidValue, "gemm_quant: weight too large for the decode kernel");
  p.batches = int(batches);
  const bool split = ws.fits && opt.max_splits != 1;
  // Without a workspace every warp takes whole strips (nothing to hand on).
  p.align = split ? 1 : int(per_strip);
  // Warps: at most one per piece, at most (batches / decode_min_batches), at most what the card holds at once.
  const int64_t pieces = batches / p.align;
  const int64_t min_batches = std::max(1, opt.decode_min_batches);
  const int64_t warps = std::min(pieces, std::max<int64_t>(1, batches / min_batches));
  const int per_block = kDecThreads / 32;
  const int64_t slots =
      int64_t(sm_count()) * gemm_decode_blocks_per_sm<BITS, T, kWide>(int(m), Sz::unit_scales(base.group));
  const int64_t blocks = std::min(slots, (warps + per_block - 1) / per_block);
  const cudaError_t e = launch_gemm_decode<BITS, T, kWide>(p, int(blocks), opt.pdl, stream);
  if (e != cudaSuccess) return fail(e, std::string("gemm_quant: decode launch failed: ") + cudaGetErrorString(e));
  return cudaSuccess;
}

template <int BITS, typename T>
cudaError_t dispatch_decode(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr, const GemmOptions& opt,
                            cudaStream_t stream) {
  return m > kDecodeNarrowMaxM ? dispatch_decode_as<BITS, T, true>(base, m, ws_bytes, ws_ptr, opt, stream)
                               : dispatch_decode_as<BITS, T, false>(base, m, ws_bytes, ws_ptr, opt, stream);
}

// The cluster size auto picks for this kernel instance (0: stream-K). Cluster split-k (csplit blocks per tile,
// one cluster each, partial sums through distributed shared memory) when the tiles are few enough that every tile
// gets at least two blocks in one wave - the largest cluster size up to 16 for which the card holds all the
// clusters at once - and each warpgroup's k range is short. Long k ranges in large clusters stream slower than
// stream-K (H100: 8B down at m = 1, clusters of 16 with 14 batches a block, 22.4 vs 16.4 us; 70B o, 512 blocks
// either way, 20.1 vs 17.3), so they keep stream-K: at 8 and 16 tokens clusters pay up to 4 batches a warpgroup
// (8B qkv 9.3 vs 11.9 us), or 16 in clusters of at most 4 (8B gate_up at m = 16: 25.9 vs 29.9) - and, since the
// kernel's later changes, INT4 16-token tiles take up to 16 in any size, and INT4 8-token tiles up to 16 in spread
// clusters (both below); at 32 and 64 tokens the hand-off is large and they pay up to 32 (8B layer at m = 64: 110
// vs 158 us). docs/perf-notes.md, "Cluster split-k".
template <int BITS, typename T, int NT, int MODE>
int auto_cluster(int64_t tiles, int kbs, const GemmOptions& opt) {
  if (!SwapSizes<BITS, NT, MODE>::kClusterOk || opt.max_splits == 1 || opt.swap_cluster != 0) return 0;
  const int64_t slots = int64_t(sm_count()) * gemm_swap_blocks_per_sm<BITS, T, NT, MODE>();
  int64_t most = std::min<int64_t>({kSwapMaxCluster, slots / tiles, kbs});
  if (opt.max_splits > 1) most = std::min<int64_t>(most, opt.max_splits);
  if (opt.swap_min_iters > 1) most = std::min<int64_t>(most, kbs / opt.swap_min_iters);
  int csplit = 0;
  for (int s = int(most); s >= 2 && csplit == 0; --s)
    if (gemm_swap_max_clusters<BITS, T, NT, MODE>(s, 0) >= tiles) csplit = s;
  if (csplit < 2) return 0;
  const int64_t per_wg = ((kbs + csplit - 1) / csplit + SwapSizes<BITS, NT, MODE>::kKGroups - 1) /
                         SwapSizes<BITS, NT, MODE>::kKGroups;
  const bool pays = NT <= 16 ? per_wg <= kClusterMaxBatches16 || (csplit <= 4 && per_wg <= 16)
                             : per_wg <= kClusterMaxBatches;
  if (pays) {
    // INT4 up to 16 tokens: a large cluster size whose grid packs the SMs (more than 2.5 blocks a SM: the card
    // cannot spread it) gives way to half that size, if a block then takes at most 8 batches. H100, 8B qkv (24
    // tiles: 384 blocks in clusters of 16, 192 in 8), four runs of the swap variants: 7.9 / 7.9 us at m = 1-4,
    // 8.0 vs 8.3 at m = 8, 8.7 vs 9.1 at m = 16 (eleventh session).
    if constexpr (BITS == 4 && NT <= 16 && MODE == kSwapWg) {
      const int half = csplit / 2;
      if (csplit >= 8 && !cluster_grid_spreads(tiles, csplit) && (kbs + half - 1) / half <= kClusterHalfMaxBatches &&
          gemm_swap_max_clusters<BITS, T, NT, MODE>(half, 0) >= tiles)
        return half;
    }
    return csplit;
  }
  // INT4, 16 tokens (m = 9-16), long k: stream-K's hand-off of 16 tokens (float2 atomics into the workspace, a
  // fence, the counter, the read-back) costs more than a cluster's, so clusters take k ranges of up to 16 batches
  // here, in the smallest size that still gives ~2 blocks per SM. H100, m = 16: 8B down 16.9 us in clusters of 16
  // (14 batches a block) vs 19.0 stream-K; 70B qkv 18.7 in clusters of 8 vs 23.2; 70B o 18.5 (8) vs 20.7; 70B
  // down keeps stream-K (28 batches a block even at 16: 58.1 vs 48.6). At 8 tokens stream-K's hand-off is cheap
  // and keeps these (8B down at m = 1: 15.0 vs 17.0 in clusters of 16). docs/perf-notes.md, eighth session.
  if constexpr (BITS == 4 && NT == 16 && MODE == kSwapWg) {
    for (int s = 2; s <= int(most); ++s)
      if ((kbs + s - 1) / s <= kClusterLongBatches16 && tiles * s * 100 >= sm_count() * kClusterLongFillPct16 &&
          gemm_swap_max_clusters<BITS, T, NT, MODE>(s, 0) >= tiles)
        return s;
  }
  // INT4, 8 tokens (m <= 8), long k: since the word prefetch (tenth session) clusters beat stream-K here too, as
  // long as their blocks stay spread (at most 2.5 a SM) and a block takes at most 16 batches. H100, m = 1, swap
  // variants of one run (eleventh session): 70B qkv in clusters of 8 16.3 us vs 18.8 stream-K, 70B o 15.7 vs 16.0,
  // 8B down in clusters of 16 14.2 vs 14.7; but 70B o in clusters of 16 (512 blocks, 3.9 a SM) 17.8, and 70B down
  // in clusters of 8 (56 batches a block) 49.4 vs 43.5.
  if constexpr (BITS == 4 && NT == 8 && MODE == kSwapWg) {
    for (int s = kSwapMaxCluster; s >= 4; s /= 2)
      if (s <= most && (kbs + s - 1) / s <= kClusterLongBatches8 && cluster_grid_spreads(tiles, s) &&
          gemm_swap_max_clusters<BITS, T, NT, MODE>(s, 0) >= tiles)
        return s;
  }
  return 0;
}

int64_t swap_tiles(const GemmParams& base, int64_t m, int nt) {
  return (base.n_pad / 64 + kSwapStrips - 1) / kSwapStrips * ((m + nt - 1) / nt);
}

// Scale rows per 64-deep stage and which one unit u of a stage reads (u >> unit_shift), for the swapped-operand and
// wide kernels' parameters: groups of 16 and 32 change inside a stage (validate_weight allows no others below 64;
// 64 and up divide or equal the stage's k range).
template <typename P>
void set_stage_scale_rows(P& p, int group) {
  static_assert(kSwapK == 64 && kWideK == 64, "both kernels' stages are 64 deep");
  p.scale_rows = group >= 64 ? 1 : 64 / group;
  p.unit_shift = group >= 64 ? 2 : (group == 32 ? 1 : 0);
}

// auto_csplit: auto_cluster's answer for this instance when the caller already asked it (-1: ask here).
template <int BITS, typename T, int NT, int MODE>
cudaError_t dispatch_swap_as(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr, const GemmOptions& opt,
                             cudaStream_t stream, int auto_csplit = -1) {
  const int64_t m_tiles = (m + NT - 1) / NT;
  const int64_t tiles = swap_tiles(base, m, NT);
  const SplitWorkspace ws = carve_workspace(ws_ptr, ws_bytes, tiles, m, base.n);
  SwapParams p = fused_params<SwapParams>(base, m, ws);
  p.kbs = base.k_pad / kSwapK;
  p.strips = base.n_pad / 64;
  set_stage_scale_rows(p, base.group);
  // Deferred scales need whole stages per group; the kernel uses them only at 8 tokens with wgmma (INT4).
  p.group_stages = opt.swap_defer_scales && base.group >= 64 ? base.group / kSwapK : 0;
#ifdef RTNQ_SWAP_TRACE
  p.trace = g_swap_trace;
#endif
  const int64_t total = tiles * p.kbs;
  if (total > INT32_MAX)
    return fail(cudaErrorInvalidValue, "gemm_quant: m = " + std::to_string(m) + " is too large");
  p.m_tiles = int(m_tiles);
  p.total_iters = int(total);
  p.evict_first = m_tiles == 1 ? 1 : 0;
  int csplit = auto_csplit >= 0 ? auto_csplit : auto_cluster<BITS, T, NT, MODE>(tiles, p.kbs, opt);
  if (opt.swap_cluster >= 2) {
    if (!SwapSizes<BITS, NT, MODE>::kClusterOk)
      return fail(cudaErrorInvalidValue, "gemm_quant: swap_cluster needs a token tile of at most 64 (m <= 64 or swap_tokens)");
    if (opt.swap_cluster > p.kbs)
      return fail(cudaErrorInvalidValue, "gemm_quant: swap_cluster " + std::to_string(opt.swap_cluster) +
                                             " exceeds the " + std::to_string(p.kbs) + " k batches of this weight");
    if (gemm_swap_max_clusters<BITS, T, NT, MODE>(opt.swap_cluster, 0) < 1)
      return fail(cudaErrorNotSupported,
                  "gemm_quant: this card cannot run a cluster of " + std::to_string(opt.swap_cluster) + " blocks");
    csplit = opt.swap_cluster;
  }
  if (MODE == kSwapWgK2 && csplit < 2)  // the k-split warpgroups hand off through clusters only
    return fail(cudaErrorInvalidValue, "gemm_quant: internal: k-split warpgroups without a cluster");
  p.csplit = csplit;
  const bool split = ws.fits && opt.max_splits != 1;
  // Stream-K over the resident blocks; without a workspace, whole tiles per block.
  const int64_t slots = int64_t(sm_count()) * gemm_swap_blocks_per_sm<BITS, T, NT, MODE>();
  int64_t grid = std::min(slots, total);
  if (opt.max_splits > 1) grid = std::min(grid, tiles * opt.max_splits);
  if (opt.swap_min_iters > 1) grid = std::min(grid, std::max<int64_t>(1, total / opt.swap_min_iters));
  if (!split) grid = tiles;
  if (csplit > 1) grid = tiles * csplit;  // needs no workspace
  if (grid > INT32_MAX) return fail(cudaErrorInvalidValue, "gemm_quant: m = " + std::to_string(m) + " is too large");
  // Cluster split-k, spread: the fewest blocks per SM that still hold every cluster at once (see padded_smem_bytes).
  int per_sm = 0;
  if (csplit > 1 && opt.swap_spread) {
    const int natural = gemm_swap_blocks_per_sm<BITS, T, NT, MODE>();
    for (int b = int((grid + sm_count() - 1) / sm_count()); b < natural && per_sm == 0; ++b)
      if (gemm_swap_max_clusters<BITS, T, NT, MODE>(csplit, b) >= tiles) per_sm = b;
  }
  const cudaError_t e = launch_gemm_swap<BITS, T, NT, MODE>(p, int(grid), opt.pdl, per_sm, stream);
  if (e != cudaSuccess) return fail(e, std::string("gemm_quant: swap launch failed: ") + cudaGetErrorString(e));
  return cudaSuccess;
}

// The smallest token tiles (8 and 16) with wgmma. INT8: clusters run with k-split warpgroups (twice the warps per
// tile), forced or where auto takes them for that kernel (H100: 8B INT8 layer at m = 1 90.5 vs 93.7 us; qkv 12.4
// vs 14.0, o 10.8 vs 11.8). INT4 lost with them (8B layer 69.3 vs 59.7 us), so it keeps one warpgroup per block.
template <int BITS, typename T, int NT>
cudaError_t dispatch_swap_small(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr,
                                const GemmOptions& opt, cudaStream_t stream) {
  if constexpr (BITS == 8) {
    const int k2 = auto_cluster<BITS, T, NT, kSwapWgK2>(swap_tiles(base, m, NT), base.k_pad / kSwapK, opt);
    if (opt.swap_cluster >= 2 || k2 > 1)
      return dispatch_swap_as<BITS, T, NT, kSwapWgK2>(base, m, ws_bytes, ws_ptr, opt, stream, k2);
  }
  return dispatch_swap_as<BITS, T, NT, kSwapWg>(base, m, ws_bytes, ws_ptr, opt, stream);
}

template <int BITS, typename T>
cudaError_t dispatch_swap(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr, const GemmOptions& opt,
                          cudaStream_t stream) {
  // Token tile: the smallest that holds m (8 only with wgmma), 128 (two warpgroups) above 64 with wgmma, else 64;
  // but 64 up to m = 128 on weights at most kSwapTwoTileMaxN wide. Their few 128-token tiles run in stream-K, whose
  // hand-off (float2 atomics into the workspace) outweighs the second m tile's weight reads from L2; two 64-token
  // tiles run in clusters. H100, m = 128, same run (fourteenth session, run 1): 8B qkv 20.6 vs 35.2 us, o 16.3 vs
  // 34.9, down 40.5 vs 49.1; but 70B o (8192 wide) 57.1 vs 55.4 and 70B qkv 67.6 vs 60.3.
  const bool two_tiles = m <= 128 && base.n <= kSwapTwoTileMaxN;
  const int nt = opt.swap_tokens != 0
                     ? opt.swap_tokens
                     : (m <= 8 && opt.swap_wgmma ? 8
                        : m <= 16                ? 16
                        : m <= 32                ? 32
                        : (m <= 64 || !opt.swap_wgmma || two_tiles) ? 64
                                                                    : 128);
  if (opt.swap_wgmma) {
    if (nt == 8) return dispatch_swap_small<BITS, T, 8>(base, m, ws_bytes, ws_ptr, opt, stream);
    if (nt == 16) return dispatch_swap_small<BITS, T, 16>(base, m, ws_bytes, ws_ptr, opt, stream);
    if (nt == 32) return dispatch_swap_as<BITS, T, 32, kSwapWg>(base, m, ws_bytes, ws_ptr, opt, stream);
    if (nt == 64) return dispatch_swap_as<BITS, T, 64, kSwapWg>(base, m, ws_bytes, ws_ptr, opt, stream);
    return dispatch_swap_as<BITS, T, 128, kSwapWg>(base, m, ws_bytes, ws_ptr, opt, stream);
  }
  if (nt == 8 || nt == 128)
    return fail(cudaErrorInvalidValue, "gemm_quant: swap_tokens " + std::to_string(nt) + " needs swap_wgmma");
  if (nt == 16) return dispatch_swap_as<BITS, T, 16, kSwapMma>(base, m, ws_bytes, ws_ptr, opt, stream);
  if (nt == 32) return dispatch_swap_as<BITS, T, 32, kSwapMma>(base, m, ws_bytes, ws_ptr, opt, stream);
  return dispatch_swap_as<BITS, T, 64, kSwapMma>(base, m, ws_bytes, ws_ptr, opt, stream);
}

// Strip kernel, auto: the least share of the SMs that a linear's strip blocks must fill (one block per SM). H100,
// m = 1-8 (thirteenth session): 8B qkv (96 strips, 73%) 7.1 us vs 8.0 in the swapped-operand kernel's clusters; 70B
// qkv (160 strips: two waves) 23.8 vs 16.4, so never more blocks than SMs.
constexpr int64_t kStripFillPct = 70;
// Strip kernel, auto: up to this m (token tiles of 8 and 16).
constexpr int64_t kStripAutoMaxM = 16;

// INT4 at 16 tokens: a block's 8 warps run two MMAs per slice and unit, and one block per SM keeps up with its
// share of HBM only on short k ranges and with every SM busy. H100, m = 9-16, strip vs swapped-operand kernel
// (thirteenth session, run 9): 8B o 6.2-6.3 vs 6.8-7.5 us, down 14.7-15.2 vs 15.9-16.5, 70B o 16.0-16.4 vs
// 17.5-18.4; but 8B qkv (73% of the SMs) 8.6-8.9 vs 8.5-8.7 and 70B down (28672 deep) 51.2-53.3 vs 47.3-50.5.
// INT8 (twice the bytes a weight) gained on all five.
constexpr int64_t kStrip16FillPct = 90;
constexpr int64_t kStrip16MaxK = 8192;  // k per block

// Blocks per strip (1 or 2) with which the strip kernel's grid holds at most one block per SM and fills at least
// kStripFillPct of them (INT4 at 16 tokens: kStrip16FillPct, with at most kStrip16MaxK of k a block); 0 if neither
// does, or the weight's scale groups are shorter than a 64-deep batch.
template <int BITS, typename T, int NT>
int auto_strip_split(const GemmParams& base, const GemmOptions& opt) {
  if (base.group % kStripK != 0) return 0;
  const int64_t strips = (base.n + 63) / 64, sms = sm_count();
  const bool int4_16 = BITS == 4 && NT == 16;
  for (int cs = 1; cs <= kStripMaxSplit; ++cs) {
    const int64_t blocks = strips * cs;
    if (blocks > sms || blocks * 100 < sms * (int4_16 ? kStrip16FillPct : kStripFillPct)) continue;
    if (int4_16 && base.k_pad / cs > kStrip16MaxK) continue;
    if (cs > 1 && gemm_strip_max_clusters<BITS, T, NT>(cs, opt.strip_per_sm) < strips) continue;
    return cs;
  }
  return 0;
}

// csplit: blocks per strip (0: choose; opt.strip_split overrides either).
template <int BITS, typename T, int NT>
cudaError_t dispatch_strip_as(const GemmParams& base, int64_t m, const GemmOptions& opt, int csplit, cudaStream_t stream) {
  if (base.group % kStripK != 0)
    return fail(cudaErrorNotSupported, "gemm_quant: the strip kernel needs scale groups of 64 or more (or per-channel), got " +
                                           std::to_string(base.group));
  const int64_t strips = (base.n + 63) / 64;
  if (opt.strip_split == 1 || opt.strip_split == 2) csplit = opt.strip_split;
  if (csplit == 0)
    csplit = strips * 2 <= sm_count() && gemm_strip_max_clusters<BITS, T, NT>(2, opt.strip_per_sm) > 0 ? 2 : 1;
  if (csplit == 2 && gemm_strip_max_clusters<BITS, T, NT>(2, opt.strip_per_sm) < 1)
    return fail(cudaErrorNotSupported, "gemm_quant: this card cannot run the strip kernel's clusters of 2");
  if (strips * csplit > INT32_MAX) return fail(cudaErrorInvalidValue, "gemm_quant: weight too large for the strip kernel");
  StripParams p{};
  set_call_fields(p, base, m);
  p.kbs = base.k_pad / kStripK;
  p.group_batches = base.group / kStripK;
  p.csplit = csplit;
  const cudaError_t e = launch_gemm_strip<BITS, T, NT>(p, int(strips * csplit), opt.pdl, opt.strip_per_sm, stream);
  if (e != cudaSuccess) return fail(e, std::string("gemm_quant: strip launch failed: ") + cudaGetErrorString(e));
  return cudaSuccess;
}

// The strip kernel with the smallest token tile that holds m (8 or 16). automatic: only where auto_strip_split
// finds a split; elsewhere *taken is false and nothing is launched (the caller runs the swapped-operand kernel).
template <int BITS, typename T>
cudaError_t dispatch_strip(const GemmParams& base, int64_t m, const GemmOptions& opt, bool automatic, bool* taken,
                           cudaStream_t stream) {
  *taken = true;
  if (m > kStripMaxTokens)
    return fail(cudaErrorInvalidValue, "gemm_quant: the strip kernel takes m <= " + std::to_string(kStripMaxTokens) +
                                           ", got m = " + std::to_string(m));
  auto run = [&]<int NT>() {
    const int cs = automatic ? auto_strip_split<BITS, T, NT>(base, opt) : 0;
    if (automatic && cs == 0) {
      *taken = false;
      return cudaSuccess;
    }
    return dispatch_strip_as<BITS, T, NT>(base, m, opt, cs, stream);
  };
  return m <= 8 ? run.template operator()<8>() : run.template operator()<16>();
}

// Blocks per tile for the wide kernel, or stream-K: wide-split.h's rule on this card (its SMs, and the clusters of
// each size the occupancy query says it holds at once).
template <int BITS, typename T, int TOK>
int auto_wide_split(int64_t tiles, int kbs, bool streamk) {
  return choose_wide_split(tiles, kbs, sm_count(), kWideMaxCluster, streamk,
                           [](int s) { return gemm_wide_max_clusters<BITS, T, TOK>(s); });
}

// The tokens the wide kernel's own call takes under gemm_quant's auto choice: all m, or m less a short tail that
// runs as a second call (wide_head_m).
int64_t auto_wide_head_m(int64_t m, int64_t weights, const GemmOptions& opt) {
  if (opt.wide_tokens != 0) return m;
  return wide_head_m(m, kWideTokensBig, opt.wide_tail < 0 ? wide_tail_max(weights) : opt.wide_tail);
}

// How the wide kernel splits k for one call, and stream-K's blocks and workspace. Stream-K: one block per SM (a
// block holds the SM's shared memory), each a range of the (tile, stage) units; every block may park one partial
// tile (a flag and a slot each). Without the workspace (or with more units than an int counts), the split instead.
// Auto takes it by wide-split.h's rule, where each block's range is long and the splits leave SMs idle (H200,
// twentieth session, us, stream-K vs the split rule, interleaved: 405B qkv at m = 128 122.0 vs 158.8, 70B gate_up
// at 128 181.5 vs 194.0). Forced, it also runs where that rule says no (H100, eighteenth session: 8B o at 256 36.2
// vs 24.3, down 65.3 vs 61.6; 70B o 69.0 vs 54.6).
struct WideSplit {
  int split;  // blocks per tile, or kWideStreamK (then the workspace fits)
  int64_t sk_blocks;
  SplitWorkspace sk_ws;
};
template <int BITS, typename T, int TOK>
WideSplit wide_split_of(const WideWork& work, size_t ws_bytes, void* ws_ptr, const GemmOptions& opt) {
  const int64_t units = work.tiles * work.kbs;
  const int64_t sk_blocks = std::min<int64_t>(sm_count(), units);
  const SplitWorkspace sk_ws = carve_workspace(ws_ptr, ws_bytes, sk_blocks, 1, wide_slot_floats(sk_blocks, TOK));
  const bool sk_ok = sk_ws.fits && units <= INT32_MAX;
  int split = opt.wide_split;
  if (split == 0 || (split == kWideStreamK && !sk_ok))
    split = auto_wide_split<BITS, T, TOK>(work.tiles, work.kbs, split == 0 && sk_ok && opt.wide_auto_streamk);
  return {split, sk_blocks, sk_ws};
}

template <int BITS, typename T, int TOK>
cudaError_t dispatch_wide_as(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr, const GemmOptions& opt,
                             cudaStream_t stream) {
  WideParams p{};
  set_call_fields(p, base, m);
  p.group = base.group;
  const WideWork work = wide_work(base.n_pad, base.k_pad, m, TOK);
  p.kbs = work.kbs;
  p.strips = base.n_pad / 64;
  p.m_tiles = int(work.m_tiles);
  set_stage_scale_rows(p, base.group);
  p.evict_first = work.m_tiles == 1 ? 1 : 0;
  const WideSplit sp = wide_split_of<BITS, T, TOK>(work, ws_bytes, ws_ptr, opt);
  int64_t blocks = 0;
  if (sp.split == kWideStreamK) {
    blocks = sp.sk_blocks;
    p.streamk = 1;
    p.counters = sp.sk_ws.counters;
    p.ws = sp.sk_ws.partials;
    p.units = int(work.tiles * work.kbs);
    p.groups = int(work.groups);
    p.csplit = 1;
    p.mcast = 1;
  } else {
    const int cs = sp.split;
    if (cs > p.kbs)
      return fail(cudaErrorInvalidValue, "gemm_quant: wide_split " + std::to_string(cs) + " exceeds the " +
                                             std::to_string(p.kbs) + " k batches of this weight");
    if (cs > 1 && gemm_wide_max_clusters<BITS, T, TOK>(cs) < 1)
      return fail(cudaErrorNotSupported, "gemm_quant: this card cannot run the wide kernel in clusters of " +
                                             std::to_string(cs));
    if (work.tiles * cs > INT32_MAX)
      return fail(cudaErrorInvalidValue, "gemm_quant: m = " + std::to_string(m) + " is too large");
    p.csplit = cs;
    // Multicast pairs need an even number of column groups (each pair shares a token tile) and whole tiles per block.
    p.mcast = opt.wide_multicast && cs == 1 && work.groups % 2 == 0 && gemm_wide_max_clusters<BITS, T, TOK>(2) > 0
                  ? 2
                  : 1;
    blocks = work.tiles * cs;
  }
  const int64_t strip_bytes = int64_t(p.ku) * 32 * BITS / 4 * 16;
  if (make_wide_act_map(base.a, m, base.k, std::is_same_v<T, __nv_bfloat16>, TOK / p.mcast, &p.a_map) !=
          cudaSuccess ||
      make_wide_weight_map(base.w, strip_bytes, p.strips, WideSizes<BITS, TOK>::kChunks, &p.w_map) != cudaSuccess)
    return fail(cudaErrorNotSupported, "gemm_quant: the wide kernel's tensor map could not be made (driver too old?)");
  const cudaError_t e = launch_gemm_wide<BITS, T, TOK>(p, int(blocks), opt.pdl, stream);
  if (e != cudaSuccess) return fail(e, std::string("gemm_quant: wide launch failed: ") + cudaGetErrorString(e));
  return cudaSuccess;
}

// f.template operator()<TOK>() for the token tile wide_tokens_for picks (64, else 128): the one place that maps it
// to a kernel instance, for the launch and for gemm_wide_split_for.
template <typename F>
auto with_wide_tokens(int64_t m, const GemmOptions& opt, F&& f) {
  return wide_tokens_for(m, opt) == kWideTokensSmall ? f.template operator()<kWideTokensSmall>()
                                                     : f.template operator()<kWideTokensBig>();
}

// The wide kernel with the token tile wide_tokens_for picks.
template <int BITS, typename T>
cudaError_t dispatch_wide(const GemmParams& base, int64_t m, size_t ws_bytes, void* ws_ptr, const GemmOptions& opt,
                          cudaStream_t stream) {
  return with_wide_tokens(m, opt, [&]<int TOK>() {
    return dispatch_wide_as<BITS, T, TOK>(base, m, ws_bytes, ws_ptr, opt, stream);
  });
}

// Whether auto takes the wide kernel's 64-token tiles (41-64 tokens) on this weight: where it measured faster than
// the swapped-operand kernel (H100, m = 64, us, seventeenth session): weights under 64M (8B qkv 13.2 vs 14.7, o 11.0
// vs 14.1, down 24.8 vs 26.6) and weights at least 16384 wide, whose 256-column tiles alone fill the SMs (8B gate_up
// 35.6 vs 38.1, 70B gate_up 136.9 vs 144.1). Not on the other 70B linears, where its split rule puts clusters that do
// not all fit at once (70B qkv 41.7 vs 32.0, down 79.3 vs 76.8, o 26.7 vs 26.2).
bool wide_small_tiles_pay(int64_t n, int64_t k) { return n * k < (int64_t(64) << 20) || n >= 16384; }

// f.template operator()<BITS, T>() for the weight's bits (4, 8) and activation type (half, __nv_bfloat16).
template <typename F>
cudaError_t with_weight_type(const RepackedWeight& w, F&& f) {
  if (w.shape.bits == 4)
    return w.act == DType::kF16 ? f.template operator()<4, half>() : f.template operator()<4, __nv_bfloat16>();
  return w.act == DType::kF16 ? f.template operator()<8, half>() : f.template operator()<8, __nv_bfloat16>();
}

}  // namespace
}  // namespace detail

const char* gemm_error_message() { return detail::t_error.c_str(); }

#ifdef RTNQ_SWAP_TRACE
void set_swap_trace(unsigned long long* buffer) { detail::g_swap_trace = buffer; }
#endif

size_t gemm_workspace_bytes(int64_t max_m, int64_t max_n) {
  // Counters: one per tile of the tiled kernel (16 x 128), which covers the swapped-operand kernel's tiles (16+
  // tokens x 256 columns), or one per 64-column strip of the decode kernel.
  const int64_t tiles = ((max_m + 15) / 16) * ((max_n + detail::kTileN - 1) / detail::kTileN);
  const int64_t counters = std::max(tiles, (max_n + 63) / 64);
  // (The wide kernel's stream-K parks up to one 128-token tile per SM instead, whatever m and n.)
  const int64_t sms = detail::sm_count();
  return std::max(detail::split_workspace_bytes(counters, max_m, max_n),
                  detail::split_workspace_bytes(sms, 1, detail::wide_slot_floats(sms, detail::kWideTokensBig)));
}

cudaError_t gemm_workspace_alloc(int64_t max_m, int64_t max_n, GemmWorkspace* ws, cudaStream_t stream) {
  if (ws == nullptr || max_m < 1 || max_n < 1)
    return detail::fail(cudaErrorInvalidValue, "gemm_workspace_alloc: need max_m >= 1, max_n >= 1 and a workspace");
  ws->bytes = gemm_workspace_bytes(max_m, max_n);
  cudaError_t e = cudaMalloc(&ws->ptr, ws->bytes);
  if (e != cudaSuccess) {
    *ws = {};
    return detail::fail(e, "gemm_workspace_alloc: cudaMalloc failed");
  }
  e = cudaMemsetAsync(ws->ptr, 0, ws->bytes, stream);
  if (e != cudaSuccess) return detail::fail(e, "gemm_workspace_alloc: cudaMemsetAsync failed");
  detail::clear_error();
  return cudaSuccess;
}

void gemm_workspace_free(GemmWorkspace* ws) {
  if (ws && ws->ptr) cudaFree(ws->ptr);
  if (ws) *ws = {};
}

namespace detail {
// Shared by every entry point that takes a repacked weight.
cudaError_t validate_weight(const RepackedWeight& w, const char* who) {
  const RepackShape& s = w.shape;
  if (s.bits != 4 && s.bits != 8)
    return fail(cudaErrorNotSupported, std::string(who) + ": bits must be 4 or 8, got " + std::to_string(s.bits));
  if (w.act != DType::kF16 && w.act != DType::kBF16)
    return fail(cudaErrorNotSupported, std::string(who) + ": activation dtype must be F16 or BF16");
  if (s.n < 1 || s.k < 1 || s.k % 8 != 0)
    return fail(cudaErrorInvalidValue, std::string(who) + ": weight shape [n=" + std::to_string(s.n) + ", k=" +
                                           std::to_string(s.k) + "] needs n >= 1 and k a positive multiple of 8");
  if (s.n_pad > INT32_MAX / 2 || s.k_pad > INT32_MAX / 2 || s.n_pad % kRepackNAlign || s.k_pad % kRepackKAlign)
    return fail(cudaErrorInvalidValue, std::string(who) + ": weight shape is not a repacked shape");
  const bool group_ok = s.group >= s.k_pad ? s.num_groups == 1
                                           : (s.group % 16 == 0 && (128 % s.group == 0 || s.group % 128 == 0));
  if (!group_ok)
    return fail(cudaErrorNotSupported, std::string(who) + ": group size " + std::to_string(s.group) +
                                           " unsupported (want 16, 32, 64, a multiple of 128, or per-channel)");
  if (w.words == nullptr || w.scales == nullptr)
    return fail(cudaErrorInvalidValue, std::string(who) + ": weight buffers are null");
  return cudaSuccess;
}
// The checks gemm_quant makes of its options and m (after validate_weight): gemm_wide_split_for answers 0 for
// exactly what gemm_quant rejects.
cudaError_t validate_options(const RepackedWeight& w, int64_t m, const GemmOptions& opt, const char* who) {
  if (opt.m_tile_rows != 0 && opt.m_tile_rows != 16 && opt.m_tile_rows != 64)
    return fail(cudaErrorInvalidValue, std::string(who) + ": m_tile_rows must be 0 (auto), 16 or 64");
  if (opt.swap_tokens != 0 && opt.swap_tokens != 8 && opt.swap_tokens != 16 && opt.swap_tokens != 32 &&
      opt.swap_tokens != 64 && opt.swap_tokens != 128)
    return fail(cudaErrorInvalidValue, std::string(who) + ": swap_tokens must be 0 (auto), 8, 16, 32, 64 or 128");
  if (opt.swap_cluster < 0 || opt.swap_cluster > kSwapMaxCluster)
    return fail(cudaErrorInvalidValue, std::string(who) + ": swap_cluster must be 0 (auto), 1 (stream-K) or 2.." +
                                           std::to_string(kSwapMaxCluster));
  if (opt.strip_split < 0 || opt.strip_split > kStripMaxSplit || opt.strip_per_sm < 0 || opt.strip_per_sm > 2)
    return fail(cudaErrorInvalidValue,
                std::string(who) + ": strip_split must be 0 (auto), 1 or 2, strip_per_sm 0, 1 or 2");
  if (opt.wide_split < kWideStreamK || opt.wide_split > kWideMaxCluster)
    return fail(cudaErrorInvalidValue, std::string(who) + ": wide_split must be 0 (auto), -1 (stream-K) or 1.." +
                                           std::to_string(kWideMaxCluster));
  if (opt.wide_tokens != 0 && opt.wide_tokens != kWideTokensSmall && opt.wide_tokens != kWideTokensBig)
    return fail(cudaErrorInvalidValue, std::string(who) + ": wide_tokens must be 0 (auto), 64 or 128");
  if (opt.wide_tail < -1 || opt.wide_tail > kWideTokensSmall)
    return fail(cudaErrorInvalidValue, std::string(who) + ": wide_tail must be -1 (auto), 0 (never) or 1..64");
  if (opt.kernel == GemmOptions::Kernel::kDecode && m > kDecodeMaxM)
    return fail(cudaErrorInvalidValue, std::string(who) + ": the decode kernel takes m <= " +
                                           std::to_string(kDecodeMaxM) + ", got m = " + std::to_string(m));
  if (m < 1 || m > INT32_MAX / 2 || m * w.shape.n > (int64_t(1) << 40))
    return fail(cudaErrorInvalidValue, std::string(who) + ": m = " + std::to_string(m) + " out of range");
  return cudaSuccess;
}
}  // namespace detail

cudaError_t gemm_quant(const void* a, const RepackedWeight& w, void* c, int64_t m, const GemmWorkspace& ws,
                       cudaStream_t stream, const GemmOptions& opt) {
  using namespace detail;
  if (cudaError_t e = validate_weight(w, "gemm_quant"); e != cudaSuccess) return e;
  if (a == nullptr || c == nullptr) return fail(cudaErrorInvalidValue, "gemm_quant: a and c must be non-null");
  if (reinterpret_cast<uintptr_t>(a) % 16 != 0)
    return fail(cudaErrorInvalidValue, "gemm_quant: a must be 16-byte aligned (it is read in 16-byte chunks)");
  if (cudaError_t e = validate_options(w, m, opt, "gemm_quant"); e != cudaSuccess) return e;
  GemmParams p{};
  p.a = a;
  p.w = reinterpret_cast<const uint4*>(w.words);
  p.scales = w.scales;
  p.c = c;
  p.n = int(w.shape.n);
  p.k = int(w.shape.k);
  p.n_pad = int(w.shape.n_pad);
  p.k_pad = int(w.shape.k_pad);
  p.num_groups = int(w.shape.num_groups);
  p.group = int(w.shape.group);
  p.scale_rows = w.shape.group < kTileK ? int(kTileK / w.shape.group) : 1;
  p.k_tiles = p.k_pad / kTileK;
  // Auto: the strip kernel where it fills the SMs at m <= 16, the wide kernel above kWideAutoMinM tokens, else the
  // swapped-operand kernel. With cluster split-k the latter also beats the decode kernel on the small linears at
  // m = 1, where the decode kernel used to win (8B qkv 8.2 vs 9.9 us, o 7.9 vs 8.5). The wide kernel took over
  // above 64 tokens once its stage hand-back stopped waiting on a cluster-scope fence, and above 40 with 64-token
  // tiles once its producer issued a stage in fewer instructions (gemm.h, kWideAutoMinM). (H100, m = 128, us, wide vs
  // swapped-operand: 8B gate_up 51.8 vs 81.5, down 37.6 vs 40.3, qkv 20.7 vs 21.6, 70B o 40.9 vs 55.3, gate_up
  // 205.1 vs 224.5; it loses on 8B o 17.7 vs 17.1, 70B qkv 66.5 vs 59.6 and down 128.7 vs 117.4, where the dual
  // path takes cuBLAS or the loss is smaller than the others' gains). Measurements: docs/perf-notes.md.
  const bool automatic = opt.kernel == GemmOptions::Kernel::kAuto && opt.m_tile_rows == 0;
  const bool decode = opt.kernel == GemmOptions::Kernel::kDecode;
  const bool swap = opt.kernel == GemmOptions::Kernel::kSwap || automatic;
  const bool strip = opt.kernel == GemmOptions::Kernel::kStrip;
  const bool wide = opt.kernel == GemmOptions::Kernel::kWide;
  const cudaError_t e = with_weight_type(w, [&]<int BITS, typename T>() {
    if (wide) return dispatch_wide<BITS, T>(p, m, ws.bytes, ws.ptr, opt, stream);
    if (automatic && m > kWideAutoMinM && (m > kWideTokensSmall || wide_small_tiles_pay(p.n, p.k))) {
      // A short tail (wide_head_m) becomes a second call of its own: rows head.. of A and C.
      const int64_t head = auto_wide_head_m(m, int64_t(p.n) * p.k, opt);
      // A card or driver that cannot run it (clusters, tensor maps) falls back to the swapped-operand kernel.
      const cudaError_t ew = dispatch_wide<BITS, T>(p, head, ws.bytes, ws.ptr, opt, stream);
      if (ew != cudaErrorNotSupported) {
        if (ew != cudaSuccess || head == m) return ew;
        const auto* a_tail = static_cast<const unsigned char*>(a) + head * p.k * 2;
        auto* c_tail = static_cast<unsigned char*>(c) + head * p.n * 2;
        return gemm_quant(a_tail, w, c_tail, m - head, ws, stream, opt);
      }
    }
    bool taken = false;
    if (strip || (automatic && m <= kStripAutoMaxM)) {
      const cudaError_t es = dispatch_strip<BITS, T>(p, m, opt, !strip, &taken, stream);
      if (taken) return es;
    }
    if (swap) return dispatch_swap<BITS, T>(p, m, ws.bytes, ws.ptr, opt, stream);
    if (decode) return dispatch_decode<BITS, T>(p, m, ws.bytes, ws.ptr, opt, stream);
    return dispatch_m<BITS, T>(p, m, ws.bytes, ws.ptr, opt.max_splits, opt.m_tile_rows, stream);
  });
  if (e == cudaSuccess) clear_error();
  return e;
}

int gemm_wide_split_for(const RepackedWeight& w, int64_t m, const GemmWorkspace& ws, const GemmOptions& opt) {
  using namespace detail;
  if (validate_weight(w, "gemm_wide_split_for") != cudaSuccess ||
      validate_options(w, m, opt, "gemm_wide_split_for") != cudaSuccess)
    return 0;
  // (Auto's first call, where it splits off a tail.)
  if (opt.kernel == GemmOptions::Kernel::kAuto) m = auto_wide_head_m(m, w.shape.n * w.shape.k, opt);
  int split = 0;
  (void)with_weight_type(w, [&]<int BITS, typename T>() {
    split = with_wide_tokens(m, opt, [&]<int TOK>() {
      const WideWork work = wide_work(w.shape.n_pad, w.shape.k_pad, m, TOK);
      return wide_split_of<BITS, T, TOK>(work, ws.bytes, ws.ptr, opt).split;
    });
    return cudaSuccess;
  });
  clear_error();
  return split;
}

}  // namespace rtnq::cuda
