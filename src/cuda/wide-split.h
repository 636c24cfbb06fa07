// How the wide kernel (gemm-wide-kernel.cuh) splits k: the rule as a pure function of the tiling and the card, so
// the host test (tests/cuda/wide-split-host-test.cu) runs it in CI without a GPU. gemm.cu feeds it the card's SM
// count and the clusters the occupancy query says it holds.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/gemm.h"

namespace rtnq::cuda::detail {

// The largest cluster the wide kernel splits a tile over: the portable cluster sizes only.
inline constexpr int kWideMaxCluster = 8;

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

// Blocks per tile (1..max_cluster, at most kWideMaxCluster) or kWideStreamK. tiles: token tiles x 256-column groups; kbs: 64-deep stages of
// a whole tile; sms: the card's SMs (one wide block each); resident(s): clusters of s blocks (2..max_cluster) the
// card holds at once, 0 where it cannot; streamk: whether the caller's workspace and the range count allow it.
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

}  // namespace rtnq::cuda::detail
