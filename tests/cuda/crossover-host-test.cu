// The dual paths' default crossover rules (dense.cu): host code only, so they run in CI without a GPU.
#include <gtest/gtest.h>

#include <cstdint>

#include "cuda/gemm.h"

namespace rtnq::cuda {
namespace {

constexpr double kH100Gbs = 3352;  // H100 80GB HBM3: 2619 MHz x 5120 bits x 2
constexpr double kH200Gbs = 4814;  // H200: 3201 MHz x 6144 bits x 2 (as card_peak_hbm_gbs read it on the card)

struct Linear {
  int64_t k, n;
};
// The linears bench-gemm times: Llama-3 8B, 70B and 405B, SmolLM2-135M.
constexpr Linear kLinears[] = {{4096, 6144},   {4096, 4096},   {4096, 28672},   {14336, 4096},
                               {8192, 10240},  {8192, 8192},   {8192, 57344},   {28672, 8192},
                               {16384, 18432}, {16384, 16384}, {16384, 106496}, {53248, 16384},
                               {576, 960},     {576, 576},     {576, 3072},     {1536, 576}};

TEST(DenseCrossover, MoreBandwidthNeverCrossesLater) {
  // cuBLAS on a dense copy is bound by its weight bytes at these m: a faster HBM can only move the switch earlier.
  for (const Linear& l : kLinears)
    for (int bits : {4, 8})
      EXPECT_LE(dense_crossover_m_for(l.n, l.k, bits, kH200Gbs), dense_crossover_m_for(l.n, l.k, bits, kH100Gbs))
          << l.k << "x" << l.n;
}

TEST(DenseCrossover, UnknownBandwidthTakesTheH100Rule) {
  for (const Linear& l : kLinears) {
    EXPECT_EQ(dense_crossover_m_for(l.n, l.k, 4, 0), dense_crossover_m_for(l.n, l.k, 4, kH100Gbs));
    const int64_t m = dense_crossover_m_for(l.n, l.k, 4, kH200Gbs);
    EXPECT_GE(m, 8);
    EXPECT_LE(m, 256);
  }
}

TEST(DenseCrossover, MeasuredSwitchPoints) {
  // docs/perf-notes.md: H100 (sixteenth to eighteenth sessions) and H200 (nineteenth, bench-gemm --cross).
  EXPECT_EQ(dense_crossover_m_for(4096, 4096, 4, kH100Gbs), 64);    // 8B o
  EXPECT_EQ(dense_crossover_m_for(4096, 4096, 4, kH200Gbs), 48);
  EXPECT_EQ(dense_crossover_m_for(8192, 8192, 4, kH100Gbs), 128);   // 70B o
  EXPECT_EQ(dense_crossover_m_for(8192, 8192, 4, kH200Gbs), 64);
  EXPECT_EQ(dense_crossover_m_for(8192, 28672, 4, kH100Gbs), 256);  // 70B down
  EXPECT_EQ(dense_crossover_m_for(8192, 28672, 4, kH200Gbs), 128);
  EXPECT_EQ(dense_crossover_m_for(4096, 14336, 4, kH200Gbs), 128);  // 8B down
  EXPECT_EQ(dense_crossover_m_for(28672, 4096, 8, kH200Gbs), 128);  // 8B gate_up, INT8 as INT4
  EXPECT_EQ(dense_crossover_m_for(576, 1536, 4, kH200Gbs), 32);     // SmolLM2 down: long k
  EXPECT_EQ(dense_crossover_m_for(960, 576, 4, kH200Gbs), 8);       // SmolLM2 qkv
}

TEST(DenseCrossover, DefaultRunsWithoutADevice) {
  // Where no card answers (CI), the peak reads 0 and the default is the H100 rule; with a card, that card's.
  const double gbs = card_peak_hbm_gbs();
  EXPECT_GE(gbs, 0);
  EXPECT_EQ(default_dense_crossover_m(4096, 4096, 4), dense_crossover_m_for(4096, 4096, 4, gbs));
}

// gemm_auto's crossover (dequantize + cuBLAS on every call above it).
TEST(DequantCrossover, NeverBelowTheKeptCopys) {
  // Dequantizing every call only adds to the cuBLAS side: the fused kernel must stay at least as long.
  for (const Linear& l : kLinears)
    for (int bits : {4, 8})
      for (double gbs : {0.0, kH100Gbs, kH200Gbs})
        EXPECT_GE(dequant_crossover_m_for(l.n, l.k, bits, gbs), dense_crossover_m_for(l.n, l.k, bits, gbs))
            << l.k << "x" << l.n << " INT" << bits << " at " << gbs << " GB/s";
}

TEST(DequantCrossover, MeasuredSwitchPoints) {
  // docs/perf-notes.md, twenty-first session (H200, bench-gemm --cross, the fused call against gemm_dense).
  EXPECT_EQ(dequant_crossover_m_for(960, 576, 4, kH200Gbs), 32);       // SmolLM2 qkv
  EXPECT_EQ(dequant_crossover_m_for(576, 1536, 4, kH200Gbs), 32);      // SmolLM2 down
  EXPECT_EQ(dequant_crossover_m_for(6144, 4096, 4, kH200Gbs), 256);    // 8B qkv
  EXPECT_EQ(dequant_crossover_m_for(28672, 4096, 4, kH200Gbs), 768);   // 8B gate_up
  EXPECT_EQ(dequant_crossover_m_for(4096, 14336, 4, kH200Gbs), 768);   // 8B down
  EXPECT_EQ(dequant_crossover_m_for(57344, 8192, 4, kH200Gbs), 768);   // 70B gate_up
  EXPECT_EQ(dequant_crossover_m_for(28672, 4096, 8, kH200Gbs), 512);   // 8B gate_up, INT8
  EXPECT_EQ(dequant_crossover_m_for(10240, 8192, 8, kH200Gbs), 512);   // 70B qkv, INT8
  EXPECT_EQ(dequant_crossover_m_for(28672, 4096, 4, kH100Gbs), 768);   // the same rule on the H100
}

TEST(DequantCrossover, DefaultRunsWithoutADevice) {
  EXPECT_EQ(default_dequant_crossover_m(4096, 4096, 4), dequant_crossover_m_for(4096, 4096, 4, card_peak_hbm_gbs()));
}

}  // namespace
}  // namespace rtnq::cuda
