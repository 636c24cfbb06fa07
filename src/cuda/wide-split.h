// How the wide kernel (gemm-wide-kernel.cuh) tiles a call and splits k: the tiling and the rules as pure functions
// of the shape and the card, so the host test (tests/cuda/wide-split-host-test.cu) runs them in CI without a GPU.
// gemm.cu feeds them the card's SM count and the clusters the occupancy query says it holds.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/gemm.h"

namespace rtnq::cuda::detail {

// The wide kernel's tiling. Token tiles: 128 above 64 tokens; 64 up to 64 tokens, where a 128-token tile would
// multiply half zeros (the dequantization per stage is the same, the MMAs half). The 64-token form uses the same
// ring, split and hand-off.
inline constexpr int kWideTokensBig = 128;
inline constexpr int kWideTokensSmall = 64;
inline constexpr int kWideStrips = 4;  // 64-column strips per block
inline constexpr int kWideK = 64;      // k per stage (4 units of 16)

// The largest cluster the wide kernel splits a tile over: the portable cluster sizes only.
inline constexpr int kWideMaxCluster = 8;

// The token tile for a call: opt.wide_tokens, or by default 64 up to 64 tokens and 128 above.
inline int wide_tokens_for(int64_t m, const GemmOptions& opt) {
  return opt.wide_tokens != 0 ? opt.wide_tokens : m <= kWideTokensSmall ? kWideTokensSmall : kWideTokensBig;
}

// The work of one call: token tiles x 256-column groups, each kbs 64-deep stages (n_pad, k_pad: the repacked
// weight's padded sizes).
struct WideWork {
  int64_t m_tiles, groups, tiles;
  int kbs;
};
inline WideWork wide_work(int64_t n_pad, int64_t k_pad, int64_t m, int tok) {
  const int64_t m_tiles = (m + tok - 1) / tok;
  const int64_t groups = (n_pad / 64 + kWideStrips - 1) / kWideStrips;
  return {m_tiles, groups, groups * m_tiles, int(k_pad / kWideK)};
}

// Costs in 64-deep stages of one block (the unit the kernel's main loop advances by).
// A cluster split-k hand-off: parking the fp32 tile, one cluster barrier, the distributed-shared-memory sums. A
// guess; against a sweep of every split (H100, `bench-gemm --wide-sweep`, docs/perf-notes.md, sixteenth session) the
// rule lands within 3-7% of the best split on 70B down and 8B o at m = 128 and 70B qkv and 8B down at 256.
inline constexpr int64_t kWideSplitCostStages = 3;
// Stream-K's own cost on top of its range: the park of a block's first share, the head's wait and gather. From the
// H100 timings of the eighteenth session (auto split vs stream-K in turn): 8B gate_up at m = 256, 2 waves of 64
// stages against a 108.6-stage range, timed level (111.5 vs 109.6 us); 70B o at 256, one wave of 67 against 62,
// lost by 26%.
inline constexpr int64_t kWideStreamKCostStages = 15;
// Stream-K only where each block's range is at least this long: below it the hand-off is a large share of the call
// and stream-K lost on every linear timed (8B qkv, o and down at m = 64-256, 1.06-2.6x slower, H100).
inline constexpr int64_t kWideStreamKMinStages = 64;
// ... and where it undercuts the best split's cost by this much (percent of it).
inline constexpr int64_t kWideStreamKMaxPct = 97;

// Blocks per tile (1..max_cluster, at most kWideMaxCluster) or kWideStreamK. tiles: token tiles x 256-column
// groups; kbs: 64-deep stages of a whole tile; sms: the card's SMs (one wide block each); resident(s): clusters of
// s blocks (2..max_cluster) the card holds at once, 0 where it cannot; streamk: whether the caller's workspace and
// the range count allow it.
// A split of s costs its waves (tiles over the clusters held at once) times ceil(kbs / s), plus the hand-off where
// s > 1; the least wins, ties keep the smaller s. Stream-K costs ceil(tiles x kbs / sms) plus its own hand-off: it
// removes the last wave's idle SMs (405B qkv at m = 128: 72 tiles on 132 SMs), which the splits cannot where their
// clusters do not fill the card evenly.
template <typename Resident>
int choose_wide_split(int64_t tiles, int64_t kbs, int64_t sms, int max_cluster, bool streamk, Resident&& resident) {
  int best = 1;
  int64_t best_cost = INT64_MAX;
  for (int s = 1; s <= max_cluster && s <= kbs; ++s) {
    const int64_t held = s == 1 ? sms : int64_t(resident(s));
    if (held < 1) continue;
    const int64_t waves = (tiles + held - 1) / held;
    const int64_t cost = waves * ((kbs + s - 1) / s + (s > 1 ? kWideSplitCostStages : 0));
    if (cost < best_cost) best = s, best_cost = cost;
  }
  if (streamk && sms > 0) {
    const int64_t range = (tiles * kbs + sms - 1) / sms;
    if (range >= kWideStreamKMinStages && (range + kWideStreamKCostStages) * 100 < best_cost * kWideStreamKMaxPct)
      return kWideStreamK;
  }
  return best;
}

// A short tail. One call whose last 128-token tile holds few tokens costs a whole tile: 8B gate_up at m = 129 took
// 96.6 us, at 128 50.5 (H200, twenty-first session, runs 3 and 6). A second call for the tail instead streams the
// weights once more and pays a call's fixed cost. `bench-gemm --tail-ab` timed both at m = 129-528 on nine Llama
// linears (one call vs the tail in its own call, us):
// - from 100M weights (8B and 70B gate_up, 70B down, 405B qkv) the tail's call won at every tail up to 32 tokens,
//   by 6-42% (8B gate_up at 136: 73.7 vs 104.6); at 48-64 it lost on 70B down (199.5 vs 182.3 at 176);
// - from 20M (8B qkv and down, 70B qkv and o) it won by 2-30% on tails up to 8 tokens but one (70B qkv at 129 and 136,
//   7-8% slower: its 128-token call is the weak one, perf-notes "70B qkv at 128"), and lost on longer tails where
//   the one call's extra tile fits in the SMs its wave leaves idle (8B qkv at 528: 49.5 vs 59.7);
// - on 8B o (17M) a call's fixed cost is most of a tile's.
// The largest tail (tokens) split off a weight of `weights`: 32 from 100M weights, 8 from 20M, else none.
inline constexpr int64_t kWideTailLargeWeights = int64_t(100) << 20;
inline constexpr int64_t kWideTailMidWeights = int64_t(20) << 20;
inline constexpr int64_t wide_tail_max(int64_t weights) {
  return weights >= kWideTailLargeWeights ? 32 : weights >= kWideTailMidWeights ? 8 : 0;
}
// The tokens gemm_quant's auto path gives the wide kernel's `tile`-token tiles: m less its last m % tile tokens
// where m is above one tile and those are at most max_tail (0 < tail <= max_tail <= tile / 2), else m.
inline constexpr int64_t wide_head_m(int64_t m, int64_t tile, int64_t max_tail) {
  const int64_t tail = m % tile;
  return m > tile && tail > 0 && tail <= std::min(max_tail, tile / 2) ? m - tail : m;
}

}  // namespace rtnq::cuda::detail
