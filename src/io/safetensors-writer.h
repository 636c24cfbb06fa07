// Streaming safetensors writer. The header (names, shapes, offsets) must precede the data, so the
// caller declares every tensor up front; then hands over each tensor's bytes once, in that order.
// The writer never holds tensor data: each write_tensor() goes straight to the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/atomic-output.h"
#include "rtnq/status.h"
#include "rtnq/tensor.h"

namespace rtnq {

// The header bytes (JSON padded with spaces to a multiple of 8, so the data section of a file
// starting at offset 0 is 8-byte aligned), without the leading length. Tensors are laid out back
// to back in the given order; `__metadata__` comes first when non-empty.
std::string safetensors_header_json(const std::vector<TensorInfo>& tensors,
                                    const std::map<std::string, std::string>& metadata);
// Exact size of the file SafetensorsWriter would write for these tensors (for shard planning).
uint64_t safetensors_file_size(const std::vector<TensorInfo>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

class SafetensorsWriter {
 public:
  // Creates `path` and writes the header. Refuses duplicate names, the reserved name
  // "__metadata__", empty names and negative dimensions.
  static Expected<SafetensorsWriter> open(const std::filesystem::path& path, std::vector<TensorInfo> tensors,
                                          std::map<std::string, std::string> metadata = {});
  SafetensorsWriter(SafetensorsWriter&&) noexcept = default;
  SafetensorsWriter& operator=(SafetensorsWriter&&) = delete;
  // A writer destroyed before a successful close() removes its partial file.
  ~SafetensorsWriter();

  // The next declared tensor's bytes: `name` must be the next one and `nbytes` its exact size.
  Status write_tensor(const std::string& name, const void* data, size_t nbytes);
  // Checks every declared tensor was written, then fsyncs and closes.
  Status close();

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  size_t tensors_written() const { return next_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  SafetensorsWriter() = default;
  std::filesystem::path path_;
  std::vector<TensorInfo> tensors_;
  std::unique_ptr<FileWriter> out_;
  size_t next_ = 0;
  bool closed_ = false;
  bool failed_ = false;  // a write error leaves the file in an unknown state
};

}  // namespace rtnq
