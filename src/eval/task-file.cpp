#include "eval/task-file.h"

#include <bzlib.h>

#include <array>
#include <cstdlib>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/read-file.h"

namespace rtnq {
namespace {

struct NamedTask {
  const char* name;
  const char* file;
  PromptStyle style;
};
// The shared files (see /work/shared/README.md) and the harness template each one needs.
constexpr std::array<NamedTask, 5> kNamedTasks{{
    {"arc_easy", "arc_easy.jsonl", PromptStyle::kArc},
    {"arc_challenge", "arc_challenge.jsonl", PromptStyle::kArc},
    {"piqa", "piqa.jsonl", PromptStyle::kPiqa},
    {"winogrande", "winogrande.jsonl", PromptStyle::kVerbatim},
    {"hellaswag", "hellaswag_val_full.txt.bz2", PromptStyle::kVerbatim},
}};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view py_strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) ++b;
  while (e > b && is_py_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Lines of a file, without their '\n' (and a '\r' before it); a final newline ends the last line.
std::vector<std::string_view> split_lines(std::string_view bytes) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t nl = bytes.find('\n', start);
    if (nl == std::string_view::npos) nl = bytes.size();
    std::string_view line = bytes.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = nl + 1;
  }
  return lines;
}

// The harness's default target_delimiter in front of a choice. (Built by append: GCC 12's -Wrestrict
// misfires on `" " + std::string`.)
std::string with_delimiter(std::string_view text) {
  std::string out(1, ' ');
  out += text;
  return out;
}

std::string apply_prompt_style(const std::string& query, PromptStyle style) {
  switch (style) {
    case PromptStyle::kVerbatim:
      return query;
    case PromptStyle::kArc:
      return query + "\nAnswer:";
    case PromptStyle::kPiqa:
      return query + "Answer:";
    case PromptStyle::kAuto:
      if (query.rfind("Question:", 0) == 0 && !ends_with(py_strip(query), "Answer:"))
        return query + (ends_with(query, "\n") ? "Answer:" : "\nAnswer:");
      return query;
  }
  return query;
}

Status line_error(const std::filesystem::path& file, int64_t line, const std::string& what) {
  return corrupt(fmt::format("{}:{}: {}", file.string(), line, what));
}

// gold as a JSON integer in [0, n).
Status read_gold(const nlohmann::json& j, size_t n, const std::filesystem::path& file, int64_t line, int64_t* gold) {
  const auto it = j.find("gold");
  if (it == j.end() || !it->is_number_integer())
    return line_error(file, line, "expected \"gold\" as an integer index");
  const int64_t g = it->get<int64_t>();
  if (g < 0 || g >= int64_t(n))
    return line_error(file, line, fmt::format("gold {} is out of range for {} choices (expected 0..{})", g, n, n - 1));
  *gold = g;
  return Status::ok();
}

Status parse_jsonl(const std::filesystem::path& file, std::string_view bytes, PromptStyle style, Task& task) {
  const auto lines = split_lines(bytes);
  bool have_form = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t line_no = int64_t(i) + 1;
    if (py_strip(lines[i]).empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return line_error(file, line_no, "not a valid JSON object");
    if (!j.is_object()) return line_error(file, line_no, "expected a JSON object");
    const bool mc = j.contains("query") || j.contains("choices");
    const bool partial = j.contains("context_options") || j.contains("continuation");
    if (mc == partial)
      return line_error(file, line_no,
                        "expected either {\"query\", \"choices\", \"gold\"} or "
                        "{\"context_options\", \"continuation\", \"gold\"}");
    const TaskFormat form = mc ? TaskFormat::kMultipleChoice : TaskFormat::kPartial;
    if (!have_form) {
      task.format = form;
      have_form = true;
    } else if (form != task.format) {
      return line_error(file, line_no,
                        fmt::format("a {} item in a {} file", task_format_name(form), task_format_name(task.format)));
    }
    TaskItem item;
    item.line = line_no;
    if (form == TaskFormat::kMultipleChoice) {
      const auto q = j.find("query");
      const auto c = j.find("choices");
      if (q == j.end() || !q->is_string()) return line_error(file, line_no, "expected \"query\" as a string");
      if (c == j.end() || !c->is_array()) return line_error(file, line_no, "expected \"choices\" as an array of strings");
      if (c->size() < 2)
        return line_error(file, line_no, fmt::format("\"choices\" has {} entries, expected at least 2", c->size()));
      const std::string context = apply_prompt_style(q->get<std::string>(), style);
      for (size_t k = 0; k < c->size(); ++k) {
        if (!(*c)[k].is_string()) return line_error(file, line_no, fmt::format("choice {} is not a string", k));
        const std::string choice = (*c)[k].get<std::string>();
        item.choices.push_back({context, with_delimiter(choice), utf8_length(choice)});
      }
      RTNQ_RETURN_IF_ERROR(read_gold(j, c->size(), file, line_no, &item.gold));
    } else {
      const auto opts = j.find("context_options");
      const auto cont = j.find("continuation");
      if (opts == j.end() || !opts->is_array())
        return line_error(file, line_no, "expected \"context_options\" as an array of strings");
      if (cont == j.end() || !cont->is_string())
        return line_error(file, line_no, "expected \"continuation\" as a string");
      if (opts->size() < 2)
        return line_error(file, line_no,
                          fmt::format("\"context_options\" has {} entries, expected at least 2", opts->size()));
      const std::string continuation = with_delimiter(cont->get<std::string>());
      for (size_t k = 0; k < opts->size(); ++k) {
        if (!(*opts)[k].is_string())
          return line_error(file, line_no, fmt::format("context option {} is not a string", k));
        const std::string option = (*opts)[k].get<std::string>();
        item.choices.push_back({option, continuation, utf8_length(option)});
      }
      RTNQ_RETURN_IF_ERROR(read_gold(j, opts->size(), file, line_no, &item.gold));
    }
    task.items.push_back(std::move(item));
  }
  task.has_acc_norm = task.format == TaskFormat::kMultipleChoice;
  return Status::ok();
}

Status parse_hellaswag(const std::filesystem::path& file, std::string_view bytes, Task& task) {
  auto lines = split_lines(bytes);
  // Trailing blank lines are the end of the file, not a truncated task.
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  constexpr size_t kLinesPerTask = 6;
  if (lines.size() % kLinesPerTask != 0) {
    const size_t start = lines.size() / kLinesPerTask * kLinesPerTask;
    return line_error(file, int64_t(start) + 1,
                      fmt::format("the last task has {} lines, expected {} (context, gold index, 4 endings); "
                                  "the file has {} lines",
                                  lines.size() - start, kLinesPerTask, lines.size()));
  }
  task.format = TaskFormat::kHellaswag;
  task.has_acc_norm = true;
  for (size_t t = 0; t < lines.size(); t += kLinesPerTask) {
    TaskItem item;
    item.line = int64_t(t) + 1;
    const std::string context = hellaswag_preprocess(lines[t]);
    if (context.empty()) return line_error(file, item.line, "empty context");
    const std::string_view gold_text = py_strip(lines[t + 1]);
    if (gold_text.size() != 1 || gold_text[0] < '0' || gold_text[0] > '3')
      return line_error(file, item.line + 1,
                        fmt::format("gold index '{}' is out of range (expected 0..3)", std::string(lines[t + 1])));
    item.gold = gold_text[0] - '0';
    for (size_t k = 0; k < 4; ++k) {
      const std::string ending = hellaswag_preprocess(lines[t + 2 + k]);
      if (ending.empty()) return line_error(file, item.line + 2 + int64_t(k), "empty ending");
      item.choices.push_back({context, with_delimiter(ending), utf8_length(ending)});
    }
    task.items.push_back(std::move(item));
  }
  return Status::ok();
}

Expected<std::string> decompress_bz2(const std::filesystem::path& file, const std::string& packed) {
  bz_stream s{};
  if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK) return io_error(fmt::format("{}: cannot start bzip2 decoder", file.string()));
  std::string out;
  std::array<char, 1 << 16> buf;
  s.next_in = const_cast<char*>(packed.data());
  s.avail_in = unsigned(packed.size());
  int rc = BZ_OK;
  while (true) {
    s.next_out = buf.data();
    s.avail_out = unsigned(buf.size());
    rc = BZ2_bzDecompress(&s);
    out.append(buf.data(), buf.size() - s.avail_out);
    if (rc == BZ_STREAM_END) {
      // Concatenated streams (pbzip2, `cat a.bz2 b.bz2`) continue with a fresh decoder.
      if (s.avail_in == 0) break;
      char* next = s.next_in;
      const unsigned left = s.avail_in;
      BZ2_bzDecompressEnd(&s);
      s = bz_stream{};
      if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK)
        return io_error(fmt::format("{}: cannot restart bzip2 decoder", file.string()));
      s.next_in = next;
      s.avail_in = left;
      continue;
    }
    if (rc != BZ_OK) break;
    if (s.avail_in == 0 && s.avail_out != 0) break;  // input ended inside a stream
  }
  BZ2_bzDecompressEnd(&s);
  if (rc != BZ_STREAM_END)
    return corrupt(fmt::format("{}: not a complete bzip2 stream (decoder code {} after {} bytes out)", file.string(), rc,
                               out.size()));
  return out;
}

std::string task_name_from_file(const std::filesystem::path& file) {
  std::string n = file.filename().string();
  for (const char* ext : {".bz2", ".jsonl", ".json", ".txt"})
    if (ends_with(n, ext)) n.resize(n.size() - std::string_view(ext).size());
  return n;
}

}  // namespace

std::string_view task_format_name(TaskFormat f) {
  switch (f) {
    case TaskFormat::kMultipleChoice: return "multiple-choice";
    case TaskFormat::kPartial: return "partial";
    case TaskFormat::kHellaswag: return "hellaswag";
  }
  return "?";
}

std::vector<std::string> known_task_names() {
  std::vector<std::string> names;
  for (const auto& t : kNamedTasks) names.emplace_back(t.name);
  return names;
}

Expected<std::filesystem::path> default_zeroshot_dir() {
  namespace fs = std::filesystem;
  const fs::path rel = fs::path("shared") / "data" / "zeroshot";
  std::vector<fs::path> tried;
  if (const char* s = std::getenv("RTNQ_SHARED")) {
    const fs::path p = fs::path(s) / "data" / "zeroshot";
    if (fs::is_directory(p)) return p;
    tried.push_back(p);
  }
  std::vector<fs::path> roots;
  if (const char* src = std::getenv("RTNQ_SOURCE_DIR")) roots.emplace_back(src);
  std::error_code ec;
  roots.push_back(fs::current_path(ec));
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) roots.push_back(exe.parent_path());
  for (fs::path root : roots) {
    root = fs::weakly_canonical(root, ec);
    for (fs::path a = root; !a.empty(); a = a.parent_path()) {
      if (fs::is_directory(a / rel)) return a / rel;
      if (a == a.parent_path()) break;
    }
  }
  return not_found(
      "no zero-shot data folder: set RTNQ_SHARED (its data/zeroshot is used), pass --data-dir, or run from "
      "a folder beside ../shared");
}

Expected<std::string> read_task_bytes(const std::filesystem::path& file) {
  auto read = read_file(file);
  if (!read) return Status(read.status().code(), read.status().message() + " (task file)");
  std::string bytes = std::move(read).value();
  if (ends_with(file.string(), ".bz2")) return decompress_bz2(file, bytes);
  return bytes;
}

Expected<Task> load_task_file(const std::filesystem::path& file, const std::string& name, PromptStyle style) {
  RTNQ_ASSIGN_OR_RETURN(std::string bytes, read_task_bytes(file));
  Task task;
  task.name = name.empty() ? task_name_from_file(file) : name;
  task.file = file;
  const std::string_view body = py_strip(bytes);
  if (body.empty()) return corrupt(fmt::format("{}: the task file is empty", file.string()));
  if (body.front() == '{') {
    RTNQ_RETURN_IF_ERROR(parse_jsonl(file, bytes, style, task));
  } else {
    RTNQ_RETURN_IF_ERROR(parse_hellaswag(file, bytes, task));
  }
  if (task.items.empty()) return corrupt(fmt::format("{}: no task items", file.string()));
  return task;
}

Expected<Task> load_named_task(const std::string& name, const std::filesystem::path& data_dir) {
  for (const auto& t : kNamedTasks) {
    if (name != t.name) continue;
    return load_task_file(data_dir / t.file, t.name, t.style);
  }
  std::string known;
  for (const auto& t : kNamedTasks) known += fmt::format("{}{}", known.empty() ? "" : ", ", t.name);
  return invalid_argument(fmt::format("unknown task '{}': expected one of {} (or --task-file FILE)", name, known));
}

std::string hellaswag_preprocess(std::string_view text) {
  std::string s(py_strip(text));
  // text.replace(" [title]", ". ")
  std::string a;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 8, " [title]") == 0) {
      a += ". ";
      i += 8;
    } else {
      a += s[i++];
    }
  }
  // re.sub("\\[.*?\\]", "", text): a '[' up to the nearest ']' goes; a '[' with none after it stays.
  std::string b;
  for (size_t i = 0; i < a.size();) {
    if (a[i] == '[') {
      const size_t close = a.find(']', i + 1);
      if (close != std::string::npos) {
        i = close + 1;
        continue;
      }
    }
    b += a[i++];
  }
  // text.replace("  ", " "): one left-to-right pass over non-overlapping pairs.
  std::string c;
  for (size_t i = 0; i < b.size();) {
    if (b[i] == ' ' && i + 1 < b.size() && b[i + 1] == ' ') {
      c += ' ';
      i += 2;
    } else {
      c += b[i++];
    }
  }
  return c;
}

int64_t utf8_length(std::string_view text) {
  int64_t n = 0;
  for (unsigned char ch : text) n += (ch & 0xC0) != 0x80;
  return n;
}

}  // namespace rtnq
