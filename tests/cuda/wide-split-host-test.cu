// The wide kernel's k-split rule (wide-split.h): host code only, so it runs in CI without a GPU. The card is an
// H200 as the occupancy query described it; the expected choices are the ones measured faster on it
// (docs/perf-notes.md, twentieth session: `bench-gemm --wide-ab`, the rule's choice, the rule without stream-K and
// stream-K forced, timed in turn).
#include <gtest/gtest.h>

#include <cstdint>

#include "cuda/wide-split.h"

namespace rtnq::cuda::detail {
namespace {

constexpr int64_t kSms = 132;
// Clusters of 2..8 wide blocks an H200 holds at once (the same for INT4 and INT8, FP16 and BF16, 64- and 128-token
// tiles); an H100 80GB HBM3 has the same 132 SMs.
int h200_resident(int s) {
  constexpr int kHeld[] = {0, 0, 66, 39, 30, 22, 17, 15, 15};
  return s >= 2 && s <= 8 ? kHeld[s] : 0;
}

// The work of a call on a [k x n] weight at m tokens, with the token tile gemm_quant takes by default (the shapes
// here need no padding).
WideWork work_for(int64_t k, int64_t n, int64_t m) { return wide_work(n, k, m, wide_tokens_for(m, GemmOptions{})); }

// The rule for that call.
int split_for(int64_t k, int64_t n, int64_t m, bool streamk = true) {
  const WideWork w = work_for(k, n, m);
  return choose_wide_split(w.tiles, w.kbs, kSms, kWideMaxCluster, streamk, h200_resident);
}

TEST(WideSplit, StreamKWhereTheSplitsLeaveSmsIdle) {
  // us on the H200, stream-K forced vs the rule without stream-K (never the first of a round).
  EXPECT_EQ(split_for(16384, 18432, 64), kWideStreamK);    // 405B qkv, 72 tiles: 93.7 vs 128.9
  EXPECT_EQ(split_for(16384, 18432, 128), kWideStreamK);   // 122.0 vs 158.8
  EXPECT_EQ(split_for(16384, 18432, 256), kWideStreamK);   // 144 tiles: 247.8 vs 313.9
  EXPECT_EQ(split_for(16384, 106496, 128), kWideStreamK);  // 405B gate_up: 730.3 vs 801.6
  EXPECT_EQ(split_for(16384, 106496, 256), kWideStreamK);  // 1433.9 vs 1560.5
  EXPECT_EQ(split_for(8192, 10240, 256), kWideStreamK);    // 70B qkv: 79.0 vs 95.5
  EXPECT_EQ(split_for(8192, 57344, 256), kWideStreamK);    // 70B gate_up: 382.1 vs 434.7
  EXPECT_EQ(split_for(28672, 8192, 128), kWideStreamK);    // 70B down: 111.6 vs 127.2
  EXPECT_EQ(split_for(4096, 28672, 512), kWideStreamK);    // 8B gate_up: 209.4 vs 249.3
  EXPECT_EQ(split_for(4096, 28672, 256), kWideStreamK);    // a tie: 101.3 vs 102.1
}

TEST(WideSplit, SplitsWhereTheyFillTheCard) {
  // Stream-K forced vs the rule's split, us on the H200 (H100 where marked).
  EXPECT_EQ(split_for(16384, 16384, 128), 2);   // 405B o, 64 tiles in pairs: 125.0 vs 118.5
  EXPECT_EQ(split_for(16384, 16384, 256), 1);   // 128 tiles: 220.9 vs 194.1
  EXPECT_EQ(split_for(53248, 16384, 256), 1);   // 405B down: 728.4 vs 628.4
  EXPECT_EQ(split_for(14336, 4096, 256), 3);    // 8B down: 65.2 vs 62.7
  EXPECT_EQ(split_for(8192, 8192, 256), 2);     // 70B o: 69.0 vs 58.7
  EXPECT_NE(split_for(4096, 4096, 128), kWideStreamK);  // 8B o: short ranges (H100 44.5 vs 16.8)
  EXPECT_NE(split_for(4096, 6144, 256), kWideStreamK);  // 8B qkv (H100 38.7 vs 31.1)
  EXPECT_NE(split_for(4096, 28672, 128), kWideStreamK); // 8B gate_up, one wave (H100 61.8 vs 51.4)
}

TEST(WideSplit, StreamKOnlyWhenAllowedAndLong) {
  for (int64_t m : {48, 64, 128, 256, 512, 1024, 4096})
    for (int64_t n : {4096, 6144, 10240, 18432, 28672, 106496})
      for (int64_t k : {4096, 8192, 16384, 53248}) {
        const int split = split_for(k, n, m, false);
        EXPECT_GE(split, 1) << k << "x" << n << " m=" << m;
        EXPECT_LE(split, kWideMaxCluster);
        const WideWork w = work_for(k, n, m);
        if (split_for(k, n, m) == kWideStreamK)
          EXPECT_GE(w.tiles * w.kbs, kWideStreamKMinStages * kSms) << k << "x" << n << " m=" << m;
      }
}

TEST(WideSplit, NoClustersOnACardWithoutThem) {
  // A card whose occupancy query holds no cluster: whole tiles a block, or stream-K.
  auto none = [](int) { return 0; };
  EXPECT_EQ(choose_wide_split(40, 128, kSms, kWideMaxCluster, false, none), 1);
  EXPECT_EQ(choose_wide_split(72, 256, kSms, kWideMaxCluster, true, none), kWideStreamK);
}

TEST(WideTail, HeadLeavesOnlyShortTails) {
  EXPECT_EQ(wide_head_m(192, 128, 64), 128);   // a 64-token tail
  EXPECT_EQ(wide_head_m(129, 128, 16), 128);   // one token
  EXPECT_EQ(wide_head_m(1025, 128, 16), 1024);
  EXPECT_EQ(wide_head_m(150, 128, 16), 150);   // 22 tokens: more than this weight's tails
  EXPECT_EQ(wide_head_m(200, 128, 64), 200);   // 72: would take a 128-token tile of its own anyway
  EXPECT_EQ(wide_head_m(200, 128, 100), 200);  // (never more than half a tile)
  EXPECT_EQ(wide_head_m(256, 128, 64), 256);   // no tail
  EXPECT_EQ(wide_head_m(100, 128, 64), 100);   // one tile only
  EXPECT_EQ(wide_head_m(192, 128, 0), 192);    // tails off
  for (int64_t m = 1; m < 2000; ++m)
    for (int64_t max_tail : {0, 1, 16, 64}) {
      const int64_t head = wide_head_m(m, 128, max_tail);
      ASSERT_TRUE(head == m || (head % 128 == 0 && head >= 128 && m - head >= 1 && m - head <= max_tail)) << m;
    }
}

TEST(WideTail, LargeWeightsTakeLongerTails) {
  // H200, twenty-first session (bench-gemm --tail-ab): a call of its own for the tail against one more 128-token tile.
  EXPECT_EQ(wide_tail_max(int64_t(4096) * 28672), 32);  // 8B gate_up (117M): 73.7 vs 104.6 us at m = 136
  EXPECT_EQ(wide_tail_max(int64_t(28672) * 8192), 32);  // 70B down: won up to 32, lost at 48 (199.5 vs 182.3)
  EXPECT_EQ(wide_tail_max(int64_t(4096) * 6144), 8);    // 8B qkv (25M): won at 8, lost at 16 after 512 tokens
  EXPECT_EQ(wide_tail_max(int64_t(4096) * 4096), 0);    // 8B o (17M)
  EXPECT_EQ(wide_tail_max(int64_t(576) * 3072), 0);     // SmolLM2
}

}  // namespace
}  // namespace rtnq::cuda::detail
