// Outputs appear whole or not at all: everything is written under a temporary sibling name, synced,
// and renamed into place by commit(). Destroying an uncommitted output removes the temporary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "rtnq/status.h"

namespace rtnq {

// A directory being written (a checkpoint folder).
class AtomicDir {
 public:
  // Refuses an existing `final_path` unless `force`; the temporary lives beside it
  // ("<name>.rtnq-tmp-<pid>") so the final rename stays on one filesystem.
  static Expected<AtomicDir> create(const std::filesystem::path& final_path, bool force);
  AtomicDir(AtomicDir&& o) noexcept;
  AtomicDir& operator=(AtomicDir&&) = delete;
  ~AtomicDir();

  const std::filesystem::path& tmp_path() const { return tmp_; }
  const std::filesystem::path& final_path() const { return final_; }
  // Replace an existing final_path (when forced) and move the temporary into place.
  Status commit();

 private:
  AtomicDir() = default;
  std::filesystem::path final_, tmp_;
  bool force_ = false;
  bool done_ = false;
};

// Write `bytes` to `path` completely (short writes retried, ENOSPC reported with the path) and fsync.
Status write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes);
Status write_text_file(const std::filesystem::path& path, const std::string& text);
// Write a single file atomically: to "<path>.tmp-<pid>", fsync, rename.
Status write_file_atomic(const std::filesystem::path& path, const std::string& text);

// Streaming writer for one large file: append() many times, then close(). Errors name the path.
class FileWriter {
 public:
  static Expected<FileWriter> open(const std::filesystem::path& path);
  FileWriter(FileWriter&& o) noexcept;
  FileWriter& operator=(FileWriter&&) = delete;
  ~FileWriter();
  Status append(const void* data, size_t n);
  Status close();  // fsync + close
  uint64_t bytes_written() const { return written_; }

 private:
  FileWriter() = default;
  int fd_ = -1;
  uint64_t written_ = 0;
  std::filesystem::path path_;
};

}  // namespace rtnq
