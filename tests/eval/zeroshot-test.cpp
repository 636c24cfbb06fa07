// Zero-shot scoring on the real stories260K: tiny random tasks written to a temp folder are scored by
// evaluate_zeroshot (shared contexts, KV cache cut back between choices) and, independently here, by
// one plain forward over each full token sequence with this file's own log-softmax. Sums agree within
// 1e-4 (fp32 logits, different row blocking of the same math), and so do the argmax picks.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/zeroshot.h"
#include "test-util.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;

// Summed log-probabilities of a few dozen tokens from fp32 logits: 1e-4 leaves room for the
// different blocking of the matmuls between a chunked and a whole-sequence forward.
constexpr double kLoglikTolerance = 1e-4;

using test::models_dir;
using test::shared_dir;

struct Stories {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tok;
};

Stories& stories() {
  static Stories s = [] {
    Stories r;
    fs::path p = models_dir() / "stories260K" / "stories260K.bin";
    if (!fs::exists(p)) p = shared_dir() / "models" / "stories260K" / "stories260K.bin";
    auto loaded = load_model(p);
    if (!loaded) {
      ADD_FAILURE() << loaded.status().to_string();
      return r;
    }
    auto tok = make_tokenizer(loaded->tokenizer);
    if (!tok) {
      ADD_FAILURE() << tok.status().to_string();
      return r;
    }
    r.tok = std::move(*tok);
    auto m = LlamaModel::create(std::move(*loaded), 2);
    if (!m) {
      ADD_FAILURE() << m.status().to_string();
      return r;
    }
    r.model = std::move(*m);
    return r;
  }();
  return s;
}

struct Reference {
  double loglik = 0.0;
  bool greedy = true;
  int64_t context_tokens = 0, continuation_tokens = 0;
};

// The harness's recipe written out directly: whitespace to the continuation, encode both, split,
// left-truncate to max_len + 1 tokens, one forward with every position's logits, log-softmax in double.
Reference reference_score(LlamaModel& model, const Tokenizer& tok, std::string ctx, std::string cont, int64_t max_len) {
  while (!ctx.empty() && (ctx.back() == ' ' || ctx.back() == '\n' || ctx.back() == '\t')) {
    cont.insert(cont.begin(), ctx.back());
    ctx.pop_back();
  }
  const bool bos = tok.add_bos_default();
  const std::vector<int32_t> whole = tok.encode(ctx + cont, bos);
  const std::vector<int32_t> c = tok.encode(ctx, bos);
  std::vector<int32_t> seq = c;
  seq.insert(seq.end(), whole.begin() + std::ptrdiff_t(c.size()), whole.end());
  const size_t m = whole.size() - c.size();
  Reference ref;
  ref.context_tokens = int64_t(c.size());
  ref.continuation_tokens = int64_t(m);
  if (seq.size() > size_t(max_len) + 1) seq.erase(seq.begin(), seq.end() - (max_len + 1));
  const std::vector<int32_t> inp(seq.begin(), seq.end() - 1);
  const int64_t V = model.vocab_size();
  std::vector<float> logits(inp.size() * size_t(V));
  KvCache cache = model.new_cache(int64_t(inp.size()));
  EXPECT_TRUE(model.forward(inp, cache, logits.data(), true).is_ok());
  for (size_t j = 0; j < m; ++j) {
    const size_t row = inp.size() - m + j;
    const int32_t target = seq[row + 1];
    const float* x = &logits[row * size_t(V)];
    double mx = x[0];
    int64_t arg = 0;
    for (int64_t v = 1; v < V; ++v)
      if (x[v] > mx) {
        mx = x[v];
        arg = v;
      }
    double z = 0.0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(x[v]) - mx);
    ref.loglik += double(x[target]) - mx - std::log(z);
    ref.greedy = ref.greedy && arg == target;
  }
  return ref;
}

class ZeroShotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = std::random_device{}();
    gen_.seed(seed_);
  }
  fs::path write(const std::string& name, const std::string& bytes) { return tmp_.write(name, bytes); }
  std::string word() {
    static const char* kWords[] = {"Lily", "Tom", "cat", "dog", "ball", "park", "happy", "sad", "big", "little",
                                   "red", "toy", "mom", "tree", "sun", "played", "saw", "wanted", "the", "a",
                                   "and", "was", "very", "friend", "jump", "café"};
    return kWords[std::uniform_int_distribution<size_t>(0, std::size(kWords) - 1)(gen_)];
  }
  std::string sentence(int lo, int hi) {
    const int n = std::uniform_int_distribution<int>(lo, hi)(gen_);
    std::string s;
    for (int i = 0; i < n; ++i) {
      if (i) s += ' ';
      s += word();
    }
    return s;
  }

  // Scores `task` both ways and checks every number evaluate_zeroshot reports.
  void check_task(const Task& task, int64_t max_len = 0) {
    SCOPED_TRACE("task " + task.name + ", seed " + std::to_string(seed_));
    Stories& s = stories();
    ASSERT_TRUE(s.model && s.tok);
    ZeroShotParams params;
    params.max_length = max_len;
    params.batch = std::uniform_int_distribution<int64_t>(1, 4)(gen_);
    int64_t progress_calls = 0, last_done = 0;
    auto r = evaluate_zeroshot(*s.model, *s.tok, task, params, [&](const ZeroShotProgress& p) {
      ++progress_calls;
      EXPECT_GT(p.done, last_done);
      EXPECT_EQ(p.total, int64_t(task.items.size()));
      last_done = p.done;
    });
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(last_done, int64_t(task.items.size()));
    EXPECT_EQ(progress_calls, (int64_t(task.items.size()) + params.batch - 1) / params.batch);
    ASSERT_EQ(r->items.size(), task.items.size());
    const int64_t L = max_len > 0 ? max_len : s.model->spec().max_position_embeddings;
    int64_t correct = 0, correct_norm = 0;
    for (size_t i = 0; i < task.items.size(); ++i) {
      const TaskItem& item = task.items[i];
      const ItemScore& got = r->items[i];
      ASSERT_EQ(got.choices.size(), item.choices.size());
      int64_t best = 0, best_norm = 0;
      double best_ll = -1e300, best_ll_norm = -1e300;
      for (size_t k = 0; k < item.choices.size(); ++k) {
        const Reference ref =
            reference_score(*s.model, *s.tok, item.choices[k].context, item.choices[k].continuation, L);
        const ChoiceScore& c = got.choices[k];
        EXPECT_NEAR(c.loglik, ref.loglik, kLoglikTolerance) << "item " << i << " choice " << k;
        EXPECT_LT(c.loglik, 0.0);
        EXPECT_EQ(c.greedy, ref.greedy) << "item " << i << " choice " << k;
        EXPECT_EQ(c.context_tokens, ref.context_tokens);
        EXPECT_EQ(c.continuation_tokens, ref.continuation_tokens);
        if (ref.loglik > best_ll) {
          best_ll = ref.loglik;
          best = int64_t(k);
        }
        const double norm = ref.loglik / double(item.choices[k].norm_chars);
        if (norm > best_ll_norm) {
          best_ll_norm = norm;
          best_norm = int64_t(k);
        }
      }
      EXPECT_EQ(got.pred, best) << "item " << i;
      EXPECT_EQ(got.pred_norm, best_norm) << "item " << i;
      EXPECT_EQ(got.gold, item.gold);
      correct += best == item.gold;
      correct_norm += best_norm == item.gold;
    }
    const double n = double(task.items.size());
    EXPECT_EQ(r->n, int64_t(task.items.size()));
    EXPECT_DOUBLE_EQ(r->acc, double(correct) / n);
    EXPECT_DOUBLE_EQ(r->acc_norm, double(correct_norm) / n);
    EXPECT_NEAR(r->acc_stderr, std::sqrt(r->acc * (1 - r->acc) / (n - 1)), 1e-12);
    EXPECT_EQ(r->has_acc_norm, task.has_acc_norm);
  }

  uint32_t seed_ = 0;
  std::mt19937 gen_;
  test::TempDir tmp_{"rtnq-zeroshot-test"};
  const fs::path dir_ = tmp_.path();
};

TEST(ZeroShotStderr, MatchesSampleStdOverSqrtN) {
  // Hand-computed: 0/1 samples with mean p have sample variance n p (1-p) / (n-1).
  EXPECT_DOUBLE_EQ(binary_stderr(0.5, 5), 0.25);
  EXPECT_NEAR(binary_stderr(0.2, 11), std::sqrt(0.016), 1e-15);
  EXPECT_EQ(binary_stderr(1.0, 7), 0.0);
  EXPECT_EQ(binary_stderr(0.5, 1), 0.0);
}

TEST(ZeroShotEncode, TrailingSpaceMovesIntoContinuation) {
  Stories& s = stories();
  ASSERT_TRUE(s.tok);
  const Tokenizer& tok = *s.tok;
  const EncodedRequest r = encode_request(tok, "Lily saw a cat. ", "The cat was happy.", true);
  const std::vector<int32_t> ctx = tok.encode("Lily saw a cat.", true);
  const std::vector<int32_t> whole = tok.encode("Lily saw a cat. The cat was happy.", true);
  EXPECT_EQ(r.context, ctx);
  ASSERT_EQ(r.context.size() + r.continuation.size(), whole.size());
  EXPECT_TRUE(std::equal(r.continuation.begin(), r.continuation.end(), whole.begin() + std::ptrdiff_t(ctx.size())));
  ASSERT_FALSE(r.context.empty());
  EXPECT_EQ(r.context[0], tok.bos_id());
  // Without BOS the same split, shifted.
  const EncodedRequest nb = encode_request(tok, "Lily saw a cat. ", "The cat was happy.", false);
  EXPECT_EQ(nb.context.size() + 1, r.context.size());
  EXPECT_EQ(nb.continuation, r.continuation);
  // An empty context is scored after the prefix token alone.
  const EncodedRequest e = encode_request(tok, "", "Tom played.", true);
  ASSERT_EQ(e.context.size(), 1u);
  EXPECT_EQ(e.context[0], tok.bos_id());
  EXPECT_EQ(e.continuation, tok.encode("Tom played.", false));
}

TEST_F(ZeroShotTest, MultipleChoiceMatchesDirectComputation) {
  std::string text;
  const int n = std::uniform_int_distribution<int>(4, 7)(gen_);
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> choices;
    const int nc = std::uniform_int_distribution<int>(2, 4)(gen_);
    for (int k = 0; k < nc; ++k) choices.push_back(sentence(1, 5) + (k % 2 ? "." : ""));
    // Every other item a query with a trailing space (moves into the continuation) or a newline.
    std::string query = "Question: " + sentence(3, 8) + "?";
    if (i % 3 == 1) query = sentence(4, 9) + " ";
    if (i % 3 == 2) query = sentence(4, 9) + "\n";
    text += nlohmann::json{{"query", query}, {"choices", choices}, {"gold", i % nc}}.dump() + "\n";
  }
  auto task = load_task_file(write("mc.jsonl", text));
  ASSERT_TRUE(task) << task.status().to_string();
  check_task(*task);
}

TEST_F(ZeroShotTest, PartialScoringMatchesDirectComputation) {
  std::string text;
  const int n = std::uniform_int_distribution<int>(4, 7)(gen_);
  for (int i = 0; i < n; ++i) {
    const std::string stem = sentence(3, 8);
    const std::vector<std::string> opts{stem + " " + word(), stem + " " + word(), stem + " " + word()};
    text += nlohmann::json{{"context_options", opts}, {"continuation", sentence(2, 6) + "."}, {"gold", i % 3}}.dump() +
            "\n";
  }
  auto task = load_task_file(write("partial.jsonl", text));
  ASSERT_TRUE(task) << task.status().to_string();
  EXPECT_FALSE(task->has_acc_norm);
  check_task(*task);
}

TEST_F(ZeroShotTest, HellaswagMatchesDirectComputationAlsoWhenTruncated) {
  std::string text;
  const int n = std::uniform_int_distribution<int>(3, 6)(gen_);
  for (int i = 0; i < n; ++i) {
    text += "Playing: " + sentence(20, 30) + ". the " + word() + "\n" + std::to_string(i % 4) + "\n";
    for (int k = 0; k < 4; ++k) text += sentence(2, 5) + ".\n";
  }
  auto task = load_task_file(write("hs.txt", text));
  ASSERT_TRUE(task) << task.status().to_string();
  check_task(*task);
  // Contexts longer than max_length: the harness keeps the last max_length + 1 tokens. The limit
  // stays above every continuation's length (the harness cannot score longer ones either).
  Stories& s = stories();
  ASSERT_TRUE(s.tok);
  int64_t longest_cont = 0, shortest_total = 1 << 30;
  for (const TaskItem& it : task->items)
    for (const TaskChoice& c : it.choices) {
      const EncodedRequest r = encode_request(*s.tok, c.context, c.continuation, true);
      longest_cont = std::max(longest_cont, int64_t(r.continuation.size()));
      shortest_total = std::min(shortest_total, int64_t(r.context.size() + r.continuation.size()));
    }
  const int64_t max_len = longest_cont + std::uniform_int_distribution<int64_t>(1, 5)(gen_);
  ASSERT_LT(max_len + 1, shortest_total) << "every request must be truncated";
  check_task(*task, max_len);
}

TEST_F(ZeroShotTest, SharedTasksScoreAndReport) {
  const fs::path dir = shared_dir() / "data" / "zeroshot";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no shared data at " << dir;
  Stories& s = stories();
  ASSERT_TRUE(s.model);
  std::vector<TaskResult> results;
  for (const char* name : {"arc_easy", "winogrande"}) {
    auto task = load_named_task(name, dir);
    ASSERT_TRUE(task) << task.status().to_string();
    // Random items from the real file, checked against the direct computation too.
    Task sample = *task;
    std::shuffle(sample.items.begin(), sample.items.end(), gen_);
    sample.items.resize(3);
    check_task(sample);
    ZeroShotParams p;
    p.limit = 4;
    auto r = evaluate_zeroshot(*s.model, *s.tok, *task, p);
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(r->n, 4);
    EXPECT_EQ(r->total_items, int64_t(task->items.size()));
    results.push_back(std::move(*r));
  }
  const std::string table = format_zeroshot_table(results);
  EXPECT_NE(table.find("| Task"), std::string::npos) << table;
  EXPECT_NE(table.find("| arc_easy"), std::string::npos) << table;
  EXPECT_NE(table.find("acc_norm"), std::string::npos) << table;
  EXPECT_NE(table.find("4/1267"), std::string::npos) << table;
  const auto j = zeroshot_results_to_json("stories260K", results, true);
  EXPECT_EQ(j["results"]["arc_easy"]["n"], 4);
  EXPECT_TRUE(j["results"]["arc_easy"].contains("acc_norm"));
  EXPECT_FALSE(j["results"]["winogrande"].contains("acc_norm"));
  EXPECT_EQ(j["results"]["winogrande"]["items"].size(), 4u);
  EXPECT_EQ(j["results"]["winogrande"]["items"][0]["choices"].size(), 2u);
}

TEST_F(ZeroShotTest, RefusesBadParameters) {
  Stories& s = stories();
  ASSERT_TRUE(s.model);
  auto task = load_task_file(write("t.jsonl", R"({"query": "Question: q?", "choices": ["a", "b"], "gold": 0})" "\n"));
  ASSERT_TRUE(task);
  ZeroShotParams p;
  p.limit = -1;
  EXPECT_FALSE(evaluate_zeroshot(*s.model, *s.tok, *task, p));
  p.limit = 0;
  p.batch = 0;
  EXPECT_FALSE(evaluate_zeroshot(*s.model, *s.tok, *task, p));
}

}  // namespace
}  // namespace rtnq
