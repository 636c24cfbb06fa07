// Zero-copy reader for the safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}),
// then the data section that the offsets index. Every header is validated as strictly as the
// reference library does before any tensor is served, so a view never points outside the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/mapped-file.h"
#include "rtnq/status.h"
#include "rtnq/tensor.h"

namespace rtnq {

// The reference implementation refuses larger headers; so do we (a JSON bomb is not a checkpoint).
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Where a tensor's bytes sit in the file: absolute offset from the start of the file, and length.
struct FileRange {
  uint64_t offset = 0;
  uint64_t size = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` and validates its header. Errors name the file and, where one is at fault, the tensor.
  static Expected<std::shared_ptr<const SafetensorsFile>> open(const std::filesystem::path& path);

  // Every tensor, in file order (by data offset), as view() serves it.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  // The tensor's bytes inside the mapping; keepalive holds the mapping. The pointer is only as
  // aligned as the file made it (writers pad the header to 8 bytes, as ours does).
  Expected<TensorView> view(const std::string& name) const;
  // For madvise through mapping(): where the tensor lies in the file.
  Expected<FileRange> file_range(const std::string& name) const;
  // `__metadata__` (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  const std::filesystem::path& path() const { return file_->path(); }
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }
  // First byte of the data section (8 + header length).
  uint64_t data_start() const { return data_start_; }
  // Sum of all tensor sizes (= file size - data_start()).
  uint64_t data_bytes() const { return file_->size() - data_start_; }

 private:
  SafetensorsFile() = default;
  Status parse_header();
  std::shared_ptr<const MappedFile> file_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::vector<FileRange> ranges_;  // parallel to tensors_, data-section relative
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace rtnq
