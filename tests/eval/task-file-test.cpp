// Task files: the three forms become the requests lm-evaluation-harness builds, bz2 reads like plain
// text, the shared tasks load with their documented sizes and templates, and every malformed file is
// refused with its name and line.
#include <gtest/gtest.h>

#include <bzlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/task-file.h"
#include "test-util.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;

using test::shared_dir;

// " " + s, built by append (GCC 12 warns spuriously on the operator+ form).
std::string spaced(const std::string& s) {
  std::string out(1, ' ');
  return out += s;
}

class TaskFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = std::random_device{}();
    gen_.seed(seed_);
  }
  fs::path write(const std::string& name, const std::string& bytes) { return tmp_.write(name, bytes); }
  std::string word() {
    static const char* kWords[] = {"cat", "dog", "sun", "tree", "Lily", "ball", "happy", "red", "big", "café",
                                   "park", "jump", "naïve", "boat", "rain", "moon", "Tom", "cake"};
    return kWords[std::uniform_int_distribution<size_t>(0, std::size(kWords) - 1)(gen_)];
  }
  std::string sentence(int min_words, int max_words) {
    const int n = std::uniform_int_distribution<int>(min_words, max_words)(gen_);
    std::string s;
    for (int i = 0; i < n; ++i) {
      if (i) s += ' ';
      s += word();
    }
    return s;
  }
  uint32_t seed_ = 0;
  std::mt19937 gen_;
  test::TempDir tmp_{"rtnq-task-file-test"};
  const fs::path dir_ = tmp_.path();
};

TEST_F(TaskFileTest, Utf8LengthCountsCodePoints) {
  EXPECT_EQ(utf8_length(""), 0);
  EXPECT_EQ(utf8_length("abc"), 3);
  EXPECT_EQ(utf8_length("café"), 4);        // é is 2 bytes
  EXPECT_EQ(utf8_length("naïve ☃ 🙂"), 9);  // 2-, 3- and 4-byte characters
}

TEST_F(TaskFileTest, HellaswagPreprocessMatchesTheHarness) {
  // Hand-applied: strip; " [title]" -> ". "; "[...]" removed; "  " -> " " in one pass.
  EXPECT_EQ(hellaswag_preprocess("  A [title] B [header] C  D   E \n"), "A. B C D  E");
  EXPECT_EQ(hellaswag_preprocess("x [a [b] y"), "x y");  // shortest match from the first [, then "  " halves
  EXPECT_EQ(hellaswag_preprocess("keep [ this"), "keep [ this");  // no ']' after it
  EXPECT_EQ(hellaswag_preprocess("[step] Go."), " Go.");  // stripped before the tag goes, as there
  EXPECT_EQ(hellaswag_preprocess("Already clean text."), "Already clean text.");
}

TEST_F(TaskFileTest, MultipleChoiceJsonlBecomesHarnessRequests) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  struct Expect {
    std::string query;
    std::vector<std::string> choices;
    int gold;
  };
  std::vector<Expect> want;
  std::string text;
  const int n = std::uniform_int_distribution<int>(3, 8)(gen_);
  for (int i = 0; i < n; ++i) {
    Expect e;
    e.query = "Question: " + sentence(2, 8) + "?";
    const int nc = std::uniform_int_distribution<int>(2, 5)(gen_);
    for (int k = 0; k < nc; ++k) e.choices.push_back(sentence(1, 4));
    e.gold = std::uniform_int_distribution<int>(0, nc - 1)(gen_);
    text += nlohmann::json{{"query", e.query}, {"choices", e.choices}, {"gold", e.gold}}.dump() + "\n";
    if (i == 1) text += "\n";  // blank lines are skipped
    want.push_back(e);
  }
  const fs::path f = write("my_task.jsonl", text);
  for (PromptStyle style : {PromptStyle::kAuto, PromptStyle::kArc, PromptStyle::kVerbatim}) {
    auto t = load_task_file(f, "", style);
    ASSERT_TRUE(t) << t.status().to_string();
    EXPECT_EQ(t->name, "my_task");
    EXPECT_EQ(t->format, TaskFormat::kMultipleChoice);
    EXPECT_TRUE(t->has_acc_norm);
    ASSERT_EQ(t->items.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const TaskItem& it = t->items[i];
      EXPECT_EQ(it.gold, want[i].gold);
      EXPECT_EQ(it.line, int64_t(i) + 1 + (i >= 2 ? 1 : 0));
      ASSERT_EQ(it.choices.size(), want[i].choices.size());
      for (size_t k = 0; k < it.choices.size(); ++k) {
        // Auto completes a "Question:" query exactly as the ARC template does.
        const std::string ctx = style == PromptStyle::kVerbatim ? want[i].query : want[i].query + "\nAnswer:";
        EXPECT_EQ(it.choices[k].context, ctx);
        EXPECT_EQ(it.choices[k].continuation, spaced(want[i].choices[k]));
        EXPECT_EQ(it.choices[k].norm_chars, utf8_length(want[i].choices[k]));
      }
    }
  }
}

TEST_F(TaskFileTest, PiqaStyleQueryEndingInNewlineGetsAnswerCue) {
  const fs::path f = write("p.jsonl", R"({"query": "Question: open a jar\n", "choices": ["twist", "pull"], "gold": 0})" "\n");
  for (PromptStyle style : {PromptStyle::kAuto, PromptStyle::kPiqa}) {
    auto t = load_task_file(f, "p", style);
    ASSERT_TRUE(t) << t.status().to_string();
    EXPECT_EQ(t->items[0].choices[1].context, "Question: open a jar\nAnswer:");
    EXPECT_EQ(t->items[0].choices[1].continuation, " pull");
  }
  // A query that already carries the cue stays as it is.
  const fs::path g = write("q.jsonl", R"({"query": "Question: x\nAnswer:", "choices": ["a", "b"], "gold": 1})" "\n");
  auto t = load_task_file(g);
  ASSERT_TRUE(t) << t.status().to_string();
  EXPECT_EQ(t->items[0].choices[0].context, "Question: x\nAnswer:");
}

TEST_F(TaskFileTest, PartialJsonlHasOneContextPerOption) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  std::string text;
  std::vector<std::pair<std::vector<std::string>, std::string>> want;
  const int n = std::uniform_int_distribution<int>(2, 6)(gen_);
  for (int i = 0; i < n; ++i) {
    const std::string stem = sentence(3, 7);
    std::vector<std::string> opts{stem + " " + word(), stem + " " + word()};
    const std::string cont = sentence(2, 5) + ".";
    text += nlohmann::json{{"context_options", opts}, {"continuation", cont}, {"gold", i % 2}}.dump() + "\n";
    want.emplace_back(opts, cont);
  }
  auto t = load_task_file(write("wino.jsonl", text));
  ASSERT_TRUE(t) << t.status().to_string();
  EXPECT_EQ(t->format, TaskFormat::kPartial);
  EXPECT_FALSE(t->has_acc_norm);
  ASSERT_EQ(t->items.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(t->items[i].gold, int64_t(i % 2));
    for (size_t k = 0; k < 2; ++k) {
      EXPECT_EQ(t->items[i].choices[k].context, want[i].first[k]);
      EXPECT_EQ(t->items[i].choices[k].continuation, spaced(want[i].second));
    }
  }
}

TEST_F(TaskFileTest, HellaswagTextAndBz2ReadAlike) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  std::string text;
  std::vector<int> golds;
  const int n = std::uniform_int_distribution<int>(2, 6)(gen_);
  for (int i = 0; i < n; ++i) {
    text += "Activity: " + sentence(4, 9) + ". the " + word() + "\n";
    golds.push_back(std::uniform_int_distribution<int>(0, 3)(gen_));
    text += std::to_string(golds.back()) + "\n";
    for (int k = 0; k < 4; ++k) text += sentence(2, 6) + (k == 2 ? " [step] x." : ".") + "\n";
  }
  const fs::path plain = write("hs.txt", text);
  std::vector<char> packed(text.size() * 2 + 1024);
  unsigned packed_len = unsigned(packed.size());
  ASSERT_EQ(BZ2_bzBuffToBuffCompress(packed.data(), &packed_len, text.data(), unsigned(text.size()), 9, 0, 0), BZ_OK);
  const fs::path bz = write("hs.txt.bz2", std::string(packed.data(), packed_len));
  auto a = load_task_file(plain);
  auto b = load_task_file(bz);
  ASSERT_TRUE(a) << a.status().to_string();
  ASSERT_TRUE(b) << b.status().to_string();
  EXPECT_EQ(a->name, "hs");
  EXPECT_EQ(b->name, "hs");
  EXPECT_EQ(a->format, TaskFormat::kHellaswag);
  ASSERT_EQ(a->items.size(), size_t(n));
  ASSERT_EQ(b->items.size(), size_t(n));
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(a->items[i].gold, golds[i]);
    EXPECT_EQ(a->items[i].line, 6 * i + 1);
    ASSERT_EQ(a->items[i].choices.size(), 4u);
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(a->items[i].choices[k].context, b->items[i].choices[k].context);
      EXPECT_EQ(a->items[i].choices[k].continuation, b->items[i].choices[k].continuation);
      EXPECT_EQ(a->items[i].choices[k].continuation.find('['), std::string::npos);
      EXPECT_EQ(a->items[i].choices[k].continuation[0], ' ');
      EXPECT_EQ(a->items[i].choices[k].norm_chars, utf8_length(a->items[i].choices[k].continuation) - 1);
    }
  }
}

// Every refusal names the file and the line, and says what was expected.
void expect_refused(const Expected<Task>& t, const fs::path& file, const std::string& where, const std::string& what) {
  ASSERT_FALSE(t) << "accepted " << file;
  const std::string m = t.status().to_string();
  EXPECT_NE(m.find(file.string() + where), std::string::npos) << m;
  EXPECT_NE(m.find(what), std::string::npos) << m;
}

TEST_F(TaskFileTest, MalformedFilesNameFileAndLine) {
  const std::string good = R"({"query": "Question: q?", "choices": ["a", "b", "c"], "gold": 1})";
  fs::path f = write("bad-json.jsonl", good + "\n" + good + "\n" + R"({"query": "Question: q?", "choices": ["a", )" + "\n");
  expect_refused(load_task_file(f), f, ":3:", "not a valid JSON");

  f = write("gold-range.jsonl", good + "\n" + R"({"query": "q", "choices": ["a", "b"], "gold": 2})" + "\n");
  expect_refused(load_task_file(f), f, ":2:", "gold 2 is out of range for 2 choices");
  f = write("gold-neg.jsonl", R"({"query": "q", "choices": ["a", "b"], "gold": -1})" "\n");
  expect_refused(load_task_file(f), f, ":1:", "out of range");
  f = write("gold-type.jsonl", R"({"query": "q", "choices": ["a", "b"], "gold": "1"})" "\n");
  expect_refused(load_task_file(f), f, ":1:", "\"gold\" as an integer");

  f = write("empty-choices.jsonl", good + "\n" + R"({"query": "q", "choices": [], "gold": 0})" + "\n");
  expect_refused(load_task_file(f), f, ":2:", "\"choices\" has 0 entries");
  f = write("choice-type.jsonl", R"({"query": "q", "choices": ["a", 3], "gold": 0})" "\n");
  expect_refused(load_task_file(f), f, ":1:", "choice 1 is not a string");
  f = write("no-query.jsonl", R"({"choices": ["a", "b"], "gold": 0})" "\n");
  expect_refused(load_task_file(f), f, ":1:", "\"query\"");
  f = write("mixed.jsonl", good + "\n" + R"({"context_options": ["a", "b"], "continuation": "c", "gold": 0})" + "\n");
  expect_refused(load_task_file(f), f, ":2:", "partial item in a multiple-choice file");
  f = write("wino-empty.jsonl", R"({"context_options": [], "continuation": "c", "gold": 0})" "\n");
  expect_refused(load_task_file(f), f, ":1:", "\"context_options\" has 0 entries");
  f = write("wino-gold.jsonl", R"({"context_options": ["a", "b"], "continuation": "c", "gold": 5})" "\n");
  expect_refused(load_task_file(f), f, ":1:", "gold 5 is out of range");
  f = write("array.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n[1, 2]\n");
  expect_refused(load_task_file(f), f, ":2:", "JSON object");

  const std::string task = "ctx\n1\na\nb\nc\nd\n";
  f = write("short.txt", task + "ctx two\n2\na\nb\n");
  expect_refused(load_task_file(f), f, ":7:", "the last task has 4 lines, expected 6");
  f = write("hs-gold.txt", task + "ctx two\n4\na\nb\nc\nd\n");
  expect_refused(load_task_file(f), f, ":8:", "gold index '4' is out of range");
  f = write("hs-gold-text.txt", "ctx\nx\na\nb\nc\nd\n");
  expect_refused(load_task_file(f), f, ":2:", "out of range");

  f = write("empty.jsonl", "\n\n");
  auto t = load_task_file(f);
  ASSERT_FALSE(t);
  EXPECT_NE(t.status().to_string().find(f.string()), std::string::npos);
  f = write("corrupt.txt.bz2", "BZh9 definitely not bzip2");
  t = load_task_file(f);
  ASSERT_FALSE(t);
  EXPECT_NE(t.status().to_string().find(f.string()), std::string::npos) << t.status().to_string();
  t = load_task_file(dir_ / "missing.jsonl");
  ASSERT_FALSE(t);
  EXPECT_NE(t.status().to_string().find("missing.jsonl"), std::string::npos);
  auto u = load_named_task("mmlu", dir_);
  ASSERT_FALSE(u);
  EXPECT_NE(u.status().to_string().find("arc_easy"), std::string::npos);
}

TEST_F(TaskFileTest, SharedTasksLoadWithHarnessTemplates) {
  const fs::path dir = shared_dir() / "data" / "zeroshot";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no shared data at " << dir;
  const std::vector<std::pair<std::string, size_t>> sizes{
      {"arc_easy", 2376}, {"arc_challenge", 1172}, {"piqa", 1838}, {"winogrande", 1267}, {"hellaswag", 10042}};
  for (const auto& [name, n] : sizes) {
    auto t = load_named_task(name, dir);
    ASSERT_TRUE(t) << t.status().to_string();
    EXPECT_EQ(t->name, name);
    EXPECT_EQ(t->items.size(), n) << name;
    EXPECT_EQ(t->has_acc_norm, name != "winogrande");
    for (const TaskItem& it : t->items) {
      for (const TaskChoice& c : it.choices) {
        ASSERT_FALSE(c.continuation.empty());
        ASSERT_EQ(c.continuation[0], ' ') << name << " line " << it.line;
        if (name == "arc_easy" || name == "arc_challenge" || name == "piqa") {
          ASSERT_EQ(c.context.rfind("Question: ", 0), 0u) << name << " line " << it.line;
          const std::string cue = "\nAnswer:";
          ASSERT_EQ(c.context.substr(c.context.size() - cue.size()), cue) << name << " line " << it.line;
          ASSERT_EQ(c.context.find("\n\nAnswer:"), std::string::npos) << name << " line " << it.line;
        }
      }
    }
  }
}

TEST_F(TaskFileTest, DefaultDataDirFollowsRtnqShared) {
  const fs::path fake = dir_ / "shared-copy";
  fs::create_directories(fake / "data" / "zeroshot");
  const char* old = std::getenv("RTNQ_SHARED");
  const std::string saved = old ? old : "";
  ::setenv("RTNQ_SHARED", fake.c_str(), 1);
  auto d = default_zeroshot_dir();
  if (old) ::setenv("RTNQ_SHARED", saved.c_str(), 1);
  else ::unsetenv("RTNQ_SHARED");
  ASSERT_TRUE(d) << d.status().to_string();
  EXPECT_EQ(*d, fake / "data" / "zeroshot");
}

}  // namespace
}  // namespace rtnq
