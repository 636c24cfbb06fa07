// THE end-to-end check of the engine: greedy decoding of the real stories260K model from BOS for
// 200 positions reproduces llama2.c's output byte for byte (pieces printed as run.c prints them,
// plus the newline it prints at the end).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "engine/generate.h"
#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "test-util.h"

namespace rtnq {
namespace {

using test::read_bytes;
using test::shared_dir;


TEST(StoriesGreedy, MatchesLlama2cByteForByte) {
  const auto dir = shared_dir() / "models" / "stories260K";
  ASSERT_TRUE(std::filesystem::exists(dir / "stories260K.bin")) << dir;
  const std::string expected = read_bytes(dir / "expected-greedy.txt");
  ASSERT_FALSE(expected.empty());

  auto loaded = load_model(dir / "stories260K.bin");
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  auto tok = make_tokenizer(loaded->tokenizer);
  ASSERT_TRUE(tok) << tok.status().to_string();
  for (int threads : {1, 2}) {
    auto again = load_model(dir / "stories260K.bin");
    ASSERT_TRUE(again);
    auto model = LlamaModel::create(std::move(*again), threads);
    ASSERT_TRUE(model) << model.status().to_string();

    GenerateParams params;
    params.max_new_tokens = 200;  // run.c -n 200 from an empty prompt: 200 forward passes
    params.sampler.temperature = 0.0f;
    params.stop_at_eos = false;   // run.c stops only at BOS
    std::string out;
    auto stats = generate(**model, **tok, params, [&](const std::string& piece) { out += piece; });
    ASSERT_TRUE(stats) << stats.status().to_string();
    out += "\n";
    EXPECT_EQ(out, expected) << "threads " << threads;
    EXPECT_EQ(stats->prompt_tokens, 1);
  }
}

TEST(StoriesGreedy, BatchedPrefillEqualsOneTokenAtATime) {
  // The batched forward (prompt prefill, perplexity windows) and the one-token decode path must
  // give the same logits: both run the same per-token kernels, so equality is exact.
  const auto dir = shared_dir() / "models" / "stories260K";
  auto loaded = load_model(dir / "stories260K.bin");
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  auto tok = make_tokenizer(loaded->tokenizer);
  ASSERT_TRUE(tok);
  auto model = LlamaModel::create(std::move(*loaded), 2);
  ASSERT_TRUE(model) << model.status().to_string();
  const auto ids = (*tok)->encode("Once upon a time, a cat sat on a mat.", true);
  const int64_t V = (*model)->vocab_size(), n = int64_t(ids.size());
  std::vector<float> batched(static_cast<size_t>(n * V)), single(static_cast<size_t>(V));
  KvCache c1 = (*model)->new_cache(64), c2 = (*model)->new_cache(64);
  ASSERT_TRUE((*model)->forward(ids, c1, batched.data(), true).is_ok());
  for (int64_t t = 0; t < n; ++t) {
    const int32_t one[1] = {ids[size_t(t)]};
    ASSERT_TRUE((*model)->forward(one, c2, single.data()).is_ok());
    for (int64_t v = 0; v < V; ++v) ASSERT_EQ(single[size_t(v)], batched[size_t(t * V + v)]) << "pos " << t << " v " << v;
  }
  // Beyond the context: an error naming the positions, not a crash.
  std::vector<int32_t> too_many(70, 5);
  KvCache c3 = (*model)->new_cache(64);
  auto st = (*model)->forward(too_many, c3, batched.data(), false);
  EXPECT_FALSE(st.is_ok());
  const int32_t bad[1] = {int32_t(V + 3)};
  EXPECT_FALSE((*model)->forward(bad, c3, single.data()).is_ok());
}

}  // namespace
}  // namespace rtnq
