// Perplexity on the real stories260K over TinyStories (its own domain): the numbers are those of a
// direct computation from the model's logits, the conventions score the documented positions, and
// the KL of a model from itself is zero.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "engine/tokenizer.h"
#include "eval/perplexity.h"
#include "test-util.h"

namespace rtnq {
namespace {

using test::shared_dir;

struct Fixture {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tok;
  std::vector<int32_t> tokens;
};

Fixture open_stories() {
  Fixture f;
  auto loaded = load_model(shared_dir() / "models" / "stories260K" / "stories260K.bin");
  EXPECT_TRUE(loaded) << loaded.status().to_string();
  if (!loaded) return f;
  auto tok = make_tokenizer(loaded->tokenizer);
  EXPECT_TRUE(tok);
  f.tok = std::move(*tok);
  auto m = LlamaModel::create(std::move(*loaded), 2);
  EXPECT_TRUE(m) << m.status().to_string();
  f.model = std::move(*m);
  const auto text_path = shared_dir() / "data" / "tinystories" / "TinyStories-valid-head.txt";
  if (const auto present = test::shared_file_exists(text_path); !present) {
    ADD_FAILURE() << present.message();
    f.model.reset();  // the tests stop at ASSERT_TRUE(f.model)
    return f;
  }
  // A random stretch of the file, so each run scores different text.
  const std::string text = test::read_bytes(text_path);
  if (text.size() < 30000) {
    ADD_FAILURE() << text_path << " holds " << text.size() << " bytes; the tests need at least 30000";
    f.model.reset();
    return f;
  }
  const uint32_t seed = std::random_device{}();
  std::mt19937 gen(seed);
  const size_t at = std::uniform_int_distribution<size_t>(0, text.size() - 30000)(gen);
  std::printf("text offset %zu (seed %u)\n", at, seed);
  f.tokens = f.tok->encode(text.substr(at, 20000), true, false);
  return f;
}

TEST(Perplexity, FullConventionMatchesDirectComputation) {
  Fixture f = open_stories();
  ASSERT_TRUE(f.model);
  PerplexityParams p;
  p.ctx = 128;
  p.limit_chunks = 3;
  int calls = 0;
  auto r = evaluate_perplexity(*f.model, f.tokens, p, nullptr, [&](const PerplexityProgress& pr) {
    ++calls;
    EXPECT_EQ(pr.chunk, calls);
  });
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r->tokens_scored, 3 * 127);
  // In-domain text: far better than uniform over 512 tokens, and in the range a 260K-parameter
  // TinyStories model reaches (about 6 on this file).
  EXPECT_GT(r->ppl, 1.5);
  EXPECT_LT(r->ppl, 20.0);
  EXPECT_GT(r->ppl_stderr, 0.0);
  EXPECT_LT(r->ppl_stderr, r->ppl * 0.5);

  // Direct: softmax of each window's logits in double.
  const int64_t V = f.model->vocab_size();
  double sum = 0;
  std::vector<float> logits(static_cast<size_t>(128 * V));
  for (int64_t c = 0; c < 3; ++c) {
    std::vector<int32_t> w(f.tokens.begin() + c * 128, f.tokens.begin() + (c + 1) * 128);
    KvCache cache = f.model->new_cache(128);
    ASSERT_TRUE(f.model->forward(w, cache, logits.data(), true).is_ok());
    for (int64_t t = 0; t + 1 < 128; ++t) {
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(double(logits[size_t(t * V + v)]));
      sum += std::log(z) - double(logits[size_t(t * V + w[size_t(t + 1)])]);
    }
  }
  EXPECT_NEAR(r->mean_nll, sum / (3 * 127), 1e-9);
}

TEST(Perplexity, SecondHalfScoresTheSecondHalfAfterBos) {
  Fixture f = open_stories();
  ASSERT_TRUE(f.model);
  PerplexityParams p;
  p.ctx = 64;
  p.mode = PerplexityMode::kSecondHalf;
  p.limit_chunks = 4;
  p.bos_id = f.tok->bos_id();
  auto r = evaluate_perplexity(*f.model, f.tokens, p, f.model.get());
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->tokens_scored, 4 * (64 - 1 - 32));
  // A model compared with itself: no divergence, full agreement.
  ASSERT_TRUE(r->has_kl);
  EXPECT_EQ(r->kl_mean, 0.0);
  EXPECT_EQ(r->top1_agreement, 1.0);
  EXPECT_EQ(r->base_ppl, r->ppl);
}

TEST(Perplexity, RejectsBadWindows) {
  Fixture f = open_stories();
  ASSERT_TRUE(f.model);
  PerplexityParams p;
  p.ctx = 2;
  EXPECT_FALSE(evaluate_perplexity(*f.model, f.tokens, p));
  p.ctx = 4096;  // beyond stories260K's 512 positions
  auto r = evaluate_perplexity(*f.model, f.tokens, p);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("4096"), std::string::npos);
  p.ctx = 256;
  std::vector<int32_t> short_text(f.tokens.begin(), f.tokens.begin() + 100);
  EXPECT_FALSE(evaluate_perplexity(*f.model, short_text, p));
}

}  // namespace
}  // namespace rtnq
