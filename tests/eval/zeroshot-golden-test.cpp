// Our zero-shot log-likelihoods for SmolLM2-135M (GGUF Q4_1, run in fp32) against Hugging Face
// transformers' on the same requests: tests/fixtures/smollm2-zeroshot-loglik.json, written on the GPU
// machine by scripts/golden/eval_loglik.py (first 50 items of each task). Token counts must match
// exactly (same tokenizer, same request split), sums within 1e-3, and the chosen answers agree.
// RTNQ_GOLDEN_LIMIT=N checks only the first N items of each task (CI uses it to stay quick).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/zeroshot.h"
#include "test-util.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;

// Absolute, per choice: both sides dequantize the same Q4_1 blocks to fp32 and run fp32 math, but
// with different matmul/attention/softmax orderings (ours blocked over AVX2 lanes, torch over cuBLAS
// tiles); per-token log-prob differences are ~1e-5 and a continuation has up to ~60 tokens.
constexpr double kLoglikTolerance = 1e-3;
// Two choices closer than this are a tie the tolerance cannot order: their pick is not compared.
constexpr double kTieMargin = 2 * kLoglikTolerance;

using test::models_dir;
using test::shared_dir;
using test::source_dir;

// Index of the maximum and whether the runner-up is within kTieMargin of it.
std::pair<int64_t, bool> pick(const std::vector<double>& v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[size_t(best)]) best = int64_t(i);
  bool tie = false;
  for (size_t i = 0; i < v.size(); ++i)
    if (int64_t(i) != best && v[size_t(best)] - v[i] < kTieMargin) tie = true;
  return {best, tie};
}

TEST(ZeroShotGolden, SmolLM2MatchesTransformers) {
  const fs::path fixture = source_dir() / "tests" / "fixtures" / "smollm2-zeroshot-loglik.json";
  const fs::path model_path = models_dir() / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  ASSERT_TRUE(fs::exists(fixture))
      << "missing golden fixture " << fixture
      << ". Make it on a machine with torch + transformers + gguf + numpy (a GPU is used when present):\n"
         "  python3 scripts/golden/eval_loglik.py tests/fixtures/smollm2-zeroshot-loglik.json "
         "--model models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf "
         "--data-dir ../shared/data/zeroshot --limit 50\n"
         "and commit the file.";
  ASSERT_TRUE(fs::exists(model_path)) << "missing " << model_path << " (run scripts/fetch-models.sh)";
  std::ifstream in(fixture);
  const nlohmann::json golden = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(golden.is_discarded()) << fixture << " is not valid JSON";
  ASSERT_TRUE(golden.contains("tasks")) << fixture << " has no \"tasks\"";

  auto loaded = load_model(model_path);
  ASSERT_TRUE(loaded) << loaded.status().to_string();
  auto tok = make_tokenizer(loaded->tokenizer);
  ASSERT_TRUE(tok) << tok.status().to_string();
  EXPECT_EQ((*tok)->add_bos_default(), golden.value("add_bos", false))
      << "the fixture was made with another BOS rule than the tokenizer's default";
  auto model = LlamaModel::create(std::move(*loaded), 0);
  ASSERT_TRUE(model) << model.status().to_string();

  int64_t limit = 0;
  if (const char* l = std::getenv("RTNQ_GOLDEN_LIMIT")) limit = std::atoll(l);
  const fs::path data = shared_dir() / "data" / "zeroshot";
  double worst = 0.0;
  int64_t compared = 0, picks = 0;
  for (const auto& [name, rows] : golden["tasks"].items()) {
    SCOPED_TRACE("task " + name);
    auto task = load_named_task(name, data);
    ASSERT_TRUE(task) << task.status().to_string();
    ZeroShotParams p;
    p.limit = int64_t(rows.size());
    if (limit > 0) p.limit = std::min(p.limit, limit);
    auto r = evaluate_zeroshot(**model, **tok, *task, p);
    ASSERT_TRUE(r) << r.status().to_string();
    ASSERT_EQ(r->n, p.limit);
    for (int64_t i = 0; i < r->n; ++i) {
      const auto& g = rows[size_t(i)];
      const ItemScore& ours = r->items[size_t(i)];
      const TaskItem& item = task->items[size_t(i)];
      ASSERT_EQ(g["line"].get<int64_t>(), item.line) << "item " << i << ": fixture and task file disagree";
      ASSERT_EQ(g["gold"].get<int64_t>(), ours.gold) << "item " << i;
      ASSERT_EQ(g["choices"].size(), ours.choices.size()) << "item " << i;
      std::vector<double> gl, gl_norm;
      for (size_t k = 0; k < ours.choices.size(); ++k) {
        const auto& gc = g["choices"][k];
        const ChoiceScore& c = ours.choices[k];
        EXPECT_EQ(c.context_tokens, gc["context_tokens"].get<int64_t>()) << "item " << i << " (line " << item.line
                                                                          << ") choice " << k;
        EXPECT_EQ(c.continuation_tokens, gc["continuation_tokens"].get<int64_t>())
            << "item " << i << " (line " << item.line << ") choice " << k;
        const double want = gc["loglik"].get<double>();
        EXPECT_NEAR(c.loglik, want, kLoglikTolerance) << "item " << i << " (line " << item.line << ") choice " << k;
        worst = std::max(worst, std::fabs(c.loglik - want));
        EXPECT_EQ(c.greedy, gc["greedy"].get<bool>()) << "item " << i << " choice " << k;
        gl.push_back(want);
        gl_norm.push_back(want / double(item.choices[k].norm_chars));
        ++compared;
      }
      const auto [best, tie] = pick(gl);
      if (!tie) {
        EXPECT_EQ(ours.pred, best) << "item " << i << " (line " << item.line << ")";
        ++picks;
      }
      if (task->has_acc_norm) {
        const auto [best_norm, tie_norm] = pick(gl_norm);
        if (!tie_norm) {
          EXPECT_EQ(ours.pred_norm, best_norm) << "item " << i << " (line " << item.line << ")";
        }
      }
    }
  }
  std::printf("compared %lld choices, %lld answer picks; largest |ours - transformers| = %.3g\n",
              static_cast<long long>(compared), static_cast<long long>(picks), worst);
  EXPECT_GT(compared, 0);
}

}  // namespace
}  // namespace rtnq
