// Read-only memory map of a whole file: the zero-copy base of every reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "rtnq/status.h"

namespace rtnq {

class MappedFile {
 public:
  static Expected<std::shared_ptr<const MappedFile>> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Tell the kernel a range will be read once, front to back, and may be dropped after (streaming
  // quantization keeps the page cache from growing with the model).
  void advise_sequential(size_t offset, size_t length) const;
  void advise_done(size_t offset, size_t length) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

}  // namespace rtnq
