// Zero-shot task files, turned into the (context, continuation) requests lm-evaluation-harness would
// build for them. Three forms are read, whatever the task:
//   jsonl {"query", "choices", "gold"}            multiple choice: one context, one continuation per choice
//   jsonl {"context_options", "continuation", "gold"}  partial scoring (Winogrande): one context per
//                                                 option, the same continuation after each
//   text, llama.cpp's HellaSwag form (.txt or .txt.bz2): per task 6 lines: context, gold index, 4 endings
// The form is told by content (a jsonl line starts with '{'); ".bz2" files are decompressed in memory.
//
// What the harness does from these files (lm-eval 0.4 task configs):
//   arc_easy / arc_challenge: "Question: {question}\nAnswer:" + " {choice}". The shared files hold
//       "Question: {question}" without the answer cue, so "\nAnswer:" is appended.
//   piqa: "Question: {goal}\nAnswer:" + " {sol}". The shared file holds "Question: {goal}\n", so
//       "Answer:" is appended.
//   winogrande: contexts = sentence up to the blank with each option, continuation = " " + the rest
//       (the harness's target_delimiter); the shared file holds exactly those pieces, stripped.
//   hellaswag: preprocess(activity_label + ": " + ctx) + " " + preprocess(ending), where preprocess
//       strips, turns " [title]" into ". ", drops "[...]" and halves double spaces. The llama.cpp file
//       already holds "activity_label: ctx"; preprocess is applied again (it only removes leftovers).
//       The harness also capitalises ctx_b, which the file no longer separates from ctx_a: that one
//       difference remains (stated in docs/results.md).
//   any other file (--task-file): a query that starts with "Question:" and lacks the cue is completed
//       the same way ("\nAnswer:", or "Answer:" after a trailing newline); other queries are used as
//       they are. Choices and endings always follow a single space, the harness's default delimiter.
// acc_norm divides by the length of the choice text (Python len: code points, no delimiter) and is
// reported for the multiple-choice forms only (winogrande's harness config defines acc alone).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "rtnq/status.h"

namespace rtnq {

enum class TaskFormat { kMultipleChoice, kPartial, kHellaswag };
std::string_view task_format_name(TaskFormat f);  // "multiple-choice", "partial", "hellaswag"

// How a multiple-choice query becomes the harness's context.
enum class PromptStyle {
  kAuto,      // complete a "Question:" query without its "Answer:" cue; otherwise verbatim
  kVerbatim,  // the query as it stands
  kArc,       // query + "\nAnswer:"
  kPiqa,      // query + "Answer:" (the query ends in its own newline)
};

// One scored continuation: the harness's (context, continuation) request for a choice.
struct TaskChoice {
  std::string context;       // before the whitespace rule (may end in spaces)
  std::string continuation;  // starts with the delimiter " "
  int64_t norm_chars = 0;    // code points of the choice text, the acc_norm divisor
};

struct TaskItem {
  std::vector<TaskChoice> choices;
  int64_t gold = 0;
  int64_t line = 0;  // 1-based line of the item in the (decompressed) file
};

struct Task {
  std::string name;
  std::filesystem::path file;
  TaskFormat format = TaskFormat::kMultipleChoice;
  bool has_acc_norm = true;
  std::vector<TaskItem> items;
};

// The tasks known by name and where their files live under the data folder.
std::vector<std::string> known_task_names();  // arc_easy, arc_challenge, piqa, winogrande, hellaswag
// The shared zero-shot folder: $RTNQ_SHARED/data/zeroshot, else the first `shared/data/zeroshot`
// found beside an ancestor of the working directory or of the running executable.
Expected<std::filesystem::path> default_zeroshot_dir();

// A task by name (one of known_task_names()) from `data_dir`.
Expected<Task> load_named_task(const std::string& name, const std::filesystem::path& data_dir);
// Any file in one of the three forms. `name` empty: the file name without .jsonl/.txt/.bz2.
Expected<Task> load_task_file(const std::filesystem::path& file, const std::string& name = {},
                              PromptStyle style = PromptStyle::kAuto);

// The file's bytes, decompressed when the name ends in ".bz2". Errors name the file.
Expected<std::string> read_task_bytes(const std::filesystem::path& file);

// lm-evaluation-harness's HellaSwag preprocess(), byte for byte on ASCII text.
std::string hellaswag_preprocess(std::string_view text);
// Python's len() of a UTF-8 string: the number of code points.
int64_t utf8_length(std::string_view text);

}  // namespace rtnq
