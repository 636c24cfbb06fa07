#include "io/safetensors-writer.h"

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace rtnq {

std::string safetensors_header_json(const std::vector<TensorInfo>& tensors,
                                    const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the declared order, so the header reads in file order.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const TensorInfo& t : tensors) {
    const uint64_t end = offset + uint64_t(t.nbytes());
    h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string s = h.dump();
  s.resize((s.size() + 7) / 8 * 8, ' ');
  return s;
}

uint64_t safetensors_file_size(const std::vector<TensorInfo>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  uint64_t total = 8 + safetensors_header_json(tensors, metadata).size();
  for (const TensorInfo& t : tensors) total += uint64_t(t.nbytes());
  return total;
}

Expected<SafetensorsWriter> SafetensorsWriter::open(const std::filesystem::path& path, std::vector<TensorInfo> tensors,
                                                    std::map<std::string, std::string> metadata) {
  std::set<std::string> names;
  for (const TensorInfo& t : tensors) {
    if (t.name.empty()) return invalid_argument(fmt::format("{}: a tensor has an empty name", path.string()));
    if (t.name == "__metadata__")
      return invalid_argument(fmt::format("{}: '__metadata__' is reserved and cannot name a tensor", path.string()));
    if (!names.insert(t.name).second)
      return invalid_argument(fmt::format("{}: tensor '{}' declared twice", path.string(), t.name));
    for (int64_t d : t.shape)
      if (d < 0)
        return invalid_argument(
            fmt::format("{}: tensor '{}': negative dimension in shape {}", path.string(), t.name, shape_to_string(t.shape)));
  }
  const std::string header = safetensors_header_json(tensors, metadata);
  if (header.size() > 100'000'000)
    return invalid_argument(fmt::format("{}: header of {} bytes is over the 100 MB safetensors limit; use more shards",
                                        path.string(), header.size()));
  SafetensorsWriter w;
  w.path_ = path;
  w.tensors_ = std::move(tensors);
  RTNQ_ASSIGN_OR_RETURN(FileWriter fw, FileWriter::open(path));
  w.out_ = std::make_unique<FileWriter>(std::move(fw));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  Status st = w.out_->append(len, 8);
  if (st.is_ok()) st = w.out_->append(header.data(), header.size());
  if (!st.is_ok()) return st;  // ~SafetensorsWriter removes the partial file
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (out_ && !closed_) {
    out_.reset();
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
}

Status SafetensorsWriter::write_tensor(const std::string& name, const void* data, size_t nbytes) {
  if (!out_ || closed_) return invalid_argument(fmt::format("{}: write_tensor('{}') after close", path_.string(), name));
  if (failed_) return io_error(fmt::format("{}: an earlier write failed; the file is incomplete", path_.string()));
  if (next_ >= tensors_.size())
    return invalid_argument(fmt::format("{}: tensor '{}' was not declared (all {} declared tensors are written)",
                                        path_.string(), name, tensors_.size()));
  const TensorInfo& t = tensors_[next_];
  if (name != t.name)
    return invalid_argument(
        fmt::format("{}: expected tensor '{}' next (declared order), got '{}'", path_.string(), t.name, name));
  if (nbytes != t.nbytes())
    return invalid_argument(fmt::format("{}: tensor '{}': {} {} needs {} bytes, got {}", path_.string(), name,
                                        dtype_name(t.dtype), shape_to_string(t.shape), t.nbytes(), nbytes));
  if (nbytes > 0) {
    Status st = out_->append(data, nbytes);
    if (!st.is_ok()) {
      failed_ = true;
      return st.with_context(fmt::format("tensor '{}'", name));
    }
  }
  ++next_;
  return Status::ok();
}

Status SafetensorsWriter::close() {
  if (!out_) return invalid_argument(fmt::format("{}: close() on a moved-from writer", path_.string()));
  if (closed_) return Status::ok();
  if (failed_) return io_error(fmt::format("{}: an earlier write failed; the file is incomplete", path_.string()));
  if (next_ != tensors_.size())
    return invalid_argument(fmt::format("{}: closed after {} of {} tensors; next missing is '{}'", path_.string(),
                                        next_, tensors_.size(), tensors_[next_].name));
  RTNQ_RETURN_IF_ERROR(out_->close());
  closed_ = true;
  return Status::ok();
}

}  // namespace rtnq
