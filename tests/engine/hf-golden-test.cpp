// Our CPU engine against Hugging Face transformers on SmolLM2-135M-Instruct (the GGUF, dequantized
// to fp32 by both). The fixtures in tests/fixtures were written on the GPU machine by
// scripts/golden/smollm2_golden.py; see that script for how.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "rtnq/model.h"
#include "test-util.h"

namespace fs = std::filesystem;

namespace rtnq {
namespace {

using test::source_dir;
fs::path gguf_path() { return test::models_dir() / "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"; }

nlohmann::json read_fixture(const char* name) {
  std::ifstream f(source_dir() / "tests/fixtures" / name);
  EXPECT_TRUE(f.good()) << name;
  return nlohmann::json::parse(f);
}

TEST(HfGolden, TokenizerMatchesTransformers) {
  if (!fs::exists(gguf_path())) GTEST_SKIP() << gguf_path() << " missing: run scripts/fetch-models.sh";
  auto loaded = load_model(gguf_path());
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  auto tok = make_tokenizer(loaded->tokenizer);
  ASSERT_TRUE(tok) << tok.status().to_string();
  const nlohmann::json fx = read_fixture("smollm2-tokenizer.json");
  ASSERT_GE(fx["cases"].size(), 10u);
  for (const auto& c : fx["cases"]) {
    const std::string text = c["text"];
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = (*tok)->encode(text, /*add_bos=*/false, /*parse_special=*/true);
    EXPECT_EQ(got, want) << "encode(" << text << ")";
    // transformers' decode() keeps special tokens' text by default; ours drops control tokens
    // (what skip_special_tokens=True gives), so remove their spellings from the reference.
    std::string expected = c["decoded"];
    for (int32_t id : want)
      if ((*tok)->is_control(id)) {
        const std::string& piece = (*tok)->piece(id);
        const size_t at = expected.find(piece);
        ASSERT_NE(at, std::string::npos) << piece;
        expected.erase(at, piece.size());
      }
    EXPECT_EQ((*tok)->decode(want), expected) << "decode of " << text;
  }
}

TEST(HfGolden, Fp32LogitsMatchTransformers) {
  if (!fs::exists(gguf_path())) GTEST_SKIP() << gguf_path() << " missing: run scripts/fetch-models.sh";
  auto loaded = load_model(gguf_path());
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  auto model = LlamaModel::create(std::move(*loaded), 2);
  ASSERT_TRUE(model) << model.status().to_string();
  const int64_t vocab = (*model)->vocab_size();
  const nlohmann::json fx = read_fixture("smollm2-logits.json");
  ASSERT_GE(fx["prompts"].size(), 3u);
  for (const auto& p : fx["prompts"]) {
    const std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    KvCache cache = (*model)->new_cache(int64_t(ids.size()));
    std::vector<float> logits(ids.size() * size_t(vocab));
    ASSERT_TRUE((*model)->forward(ids, cache, logits.data(), /*all_logits=*/true).is_ok());
    for (const auto& row : p["rows"]) {
      const int64_t pos = row["position"];
      const float* ours = logits.data() + pos * vocab;
      double mx = -INFINITY, sum = 0;
      for (int64_t v = 0; v < vocab; ++v) mx = std::max(mx, double(ours[v]));
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(ours[v]) - mx);
      const double lse = mx + std::log(sum);
      const auto top_ids = row["top_ids"].get<std::vector<int64_t>>();
      const auto top_vals = row["top_logits"].get<std::vector<double>>();
      // 1e-3 relative to the row's largest logit: both sides are fp32 over the same dequantized
      // weights, differing only in summation order (~1e-5 relative expected).
      const double tol = 1e-3 * std::abs(top_vals[0]);
      for (size_t k = 0; k < top_ids.size(); ++k)
        EXPECT_NEAR(ours[top_ids[k]], top_vals[k], tol) << p["text"] << " pos " << pos << " id " << top_ids[k];
      EXPECT_NEAR(lse, row["logsumexp"].get<double>(), 1e-3 * std::abs(row["logsumexp"].get<double>()))
          << p["text"] << " pos " << pos;
      if (top_vals[0] - top_vals[1] > 2 * tol) {  // a clear winner must be ours too
        int64_t best = 0;
        for (int64_t v = 1; v < vocab; ++v)
          if (ours[v] > ours[best]) best = v;
        EXPECT_EQ(best, top_ids[0]) << p["text"] << " pos " << pos;
      }
    }
  }
}

}  // namespace
}  // namespace rtnq
