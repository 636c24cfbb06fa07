// SmolLM2-135M logits against golden values from an independent float64 implementation
// (tests/engine/golden/make-smollm2-golden.py: llama.cpp's gguf-py dequantization and a numpy
// forward pass on the GGUF layout with interleaved RoPE). Agreement to 1e-3 of the row's largest
// logit checks the GGUF loader's q/k un-permutation, the half-split RoPE and every op end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "test-util.h"

namespace rtnq {
namespace {

using test::models_dir;
using test::source_dir;

TEST(GoldenLogits, SmolLM2MatchesIndependentFloat64Forward) {
  const auto gguf = models_dir() / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << "no " << gguf << " (scripts/fetch-models.sh makes it)";
  std::ifstream in(source_dir() / "tests" / "engine" / "golden" / "smollm2-golden.json");
  ASSERT_TRUE(in.good());
  const auto golden = nlohmann::json::parse(in);
  auto loaded = load_model(gguf);
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  auto tok = make_tokenizer(loaded->tokenizer);
  ASSERT_TRUE(tok);
  auto model = LlamaModel::create(std::move(*loaded), 2);
  ASSERT_TRUE(model) << model.status().to_string();
  const int64_t V = (*model)->vocab_size();
  // The first fixture sequence is this text in SmolLM2's vocabulary.
  EXPECT_EQ((*tok)->encode("The capital of France is", false),
            golden["sequences"][0]["tokens"].get<std::vector<int32_t>>());
  double worst = 0;
  for (const auto& seq : golden["sequences"]) {
    const auto ids = seq["tokens"].get<std::vector<int32_t>>();
    std::vector<float> logits(static_cast<size_t>(int64_t(ids.size()) * V));
    KvCache cache = (*model)->new_cache(64);
    ASSERT_TRUE((*model)->forward(ids, cache, logits.data(), true).is_ok());
    for (size_t t = 0; t < ids.size(); ++t) {
      const auto& pos = seq["positions"][t];
      const double scale = pos["max_abs"].get<double>();
      const auto top = pos["ids"].get<std::vector<int64_t>>();
      const auto want = pos["logits"].get<std::vector<double>>();
      const float* row = &logits[t * size_t(V)];
      EXPECT_EQ(int64_t(std::max_element(row, row + V) - row), top[0]) << "position " << t;
      for (size_t k = 0; k < top.size(); ++k) {
        const double err = std::abs(double(row[top[k]]) - want[k]) / scale;
        worst = std::max(worst, err);
        EXPECT_LT(err, 1e-3) << "position " << t << " token " << top[k] << ": " << row[top[k]] << " vs " << want[k];
      }
    }
  }
  std::printf("largest error relative to the row's max |logit|: %.2e\n", worst);
}

}  // namespace
}  // namespace rtnq
