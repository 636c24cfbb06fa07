#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace rtnq {

namespace {

using json = nlohmann::json;

// A shape or offset entry: JSON must hold a non-negative integer that fits int64 (the parser
// stores non-negative integers as unsigned, negative ones as signed, anything else as float).
bool as_index(const json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  const uint64_t v = j.get<uint64_t>();
  if (v > uint64_t(std::numeric_limits<int64_t>::max())) return false;
  *out = v;
  return true;
}

struct Entry {
  TensorInfo info;
  uint64_t begin = 0, end = 0;
};

}  // namespace

Status SafetensorsFile::parse_header() {
  const std::string file = file_->path().string();
  const uint64_t size = file_->size();
  if (size < 8) return corrupt(fmt::format("{}: truncated: {} bytes, fewer than the 8-byte header length", file, size));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file_->data()[i];  // little-endian on any host
  if (n > kSafetensorsMaxHeaderBytes)
    return corrupt(fmt::format("{}: header length {} exceeds the {}-byte limit (not a safetensors file?)", file, n,
                               kSafetensorsMaxHeaderBytes));
  if (n > size - 8)
    return corrupt(fmt::format("{}: truncated header: it claims {} bytes but the file has {} after the length", file,
                               n, size - 8));
  if (n < 2) return corrupt(fmt::format("{}: header of {} bytes cannot hold a JSON object", file, n));
  data_start_ = 8 + n;

  const char* text = reinterpret_cast<const char*>(file_->data() + 8);
  // The parser silently keeps the last of duplicate keys; a duplicated tensor name is a corrupt
  // header (two tensors would claim one name), so watch the top-level keys go by.
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    return corrupt(fmt::format("{}: header is not valid JSON: {}", file, e.what()));
  }
  if (!header.is_object()) return corrupt(fmt::format("{}: header is JSON but not an object ({})", file, header.type_name()));
  if (!duplicate.empty()) return corrupt(fmt::format("{}: tensor '{}' appears twice in the header", file, duplicate));

  const uint64_t data_size = size - data_start_;
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      if (!v.is_object())
        return corrupt(fmt::format("{}: __metadata__ must be an object of strings, got {}", file, v.type_name()));
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m->is_string())
          return corrupt(fmt::format("{}: __metadata__ key '{}' must be a string, got {}", file, m.key(),
                                     m->type_name()));
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return corrupt(fmt::format("{}: tensor '{}': {}", file, name, what)); };
    if (!v.is_object()) return bad(fmt::format("entry must be an object, got {}", v.type_name()));
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) return bad("missing string field 'dtype'");
    const std::string dtype_str = dt->get<std::string>();
    const auto dtype = dtype_from_name(dtype_str);
    if (!dtype)
      return unsupported(fmt::format("{}: unsupported dtype {} for tensor '{}' (supported: F32 F16 BF16 F64 I8 U8 "
                                     "I16 I32 I64 BOOL)", file, dtype_str, name));
    Entry e;
    e.info.name = name;
    e.info.dtype = *dtype;
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) return bad("missing array field 'shape'");
    // Element count times element size must be computed without wrapping: a crafted shape could
    // otherwise multiply to a small number and pass the size check.
    uint64_t bytes = dtype_size(*dtype);
    for (const json& d : *sh) {
      uint64_t dim = 0;
      if (!as_index(d, &dim)) return bad(fmt::format("shape {} must hold non-negative integers below 2^63", sh->dump()));
      e.info.shape.push_back(int64_t(dim));
      if (__builtin_mul_overflow(bytes, dim, &bytes) || bytes > uint64_t(std::numeric_limits<int64_t>::max()))
        return bad(fmt::format("shape {} x {} overflows a 64-bit byte count", sh->dump(), dtype_str));
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !as_index((*off)[0], &e.begin) ||
        !as_index((*off)[1], &e.end))
      return bad("'data_offsets' must be [begin, end] of non-negative integers");
    if (e.begin > e.end) return bad(fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
    if (e.end > data_size)
      return bad(fmt::format("data_offsets [{}, {}] run past the data section of {} bytes (file truncated?)", e.begin,
                             e.end, data_size));
    if (e.end - e.begin != bytes)
      return bad(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", sh->dump(), dtype_str,
                             bytes, e.begin, e.end, e.end - e.begin));
    entries.push_back(std::move(e));
  }

  // Tensors tile the data section exactly, as the reference library demands: sorted by offset, each
  // starts where the previous ended, and the last ends at the end of the file.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.info.name < b.info.name;
  });
  uint64_t cursor = 0;
  std::string prev;
  for (const Entry& e : entries) {
    if (e.begin < cursor)
      return corrupt(fmt::format("{}: tensor '{}' at [{}, {}] overlaps tensor '{}' ending at {}", file, e.info.name,
                                 e.begin, e.end, prev, cursor));
    if (e.begin > cursor)
      return corrupt(fmt::format("{}: hole in the data section: bytes [{}, {}) before tensor '{}' belong to no tensor",
                                 file, cursor, e.begin, e.info.name));
    cursor = e.end;
    prev = e.info.name;
  }
  if (cursor != data_size)
    return corrupt(fmt::format("{}: data section has {} bytes but its tensors cover only {} (trailing bytes{})", file,
                               data_size, cursor, prev.empty() ? "" : " after tensor '" + prev + "'"));

  tensors_.reserve(entries.size());
  ranges_.reserve(entries.size());
  for (Entry& e : entries) {
    index_.emplace(e.info.name, tensors_.size());
    ranges_.push_back({e.begin, e.end - e.begin});
    tensors_.push_back(std::move(e.info));
  }
  return Status::ok();
}

Expected<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::open(const std::filesystem::path& path) {
  RTNQ_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(path));
  auto f = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  f->file_ = std::move(mapped);
  RTNQ_RETURN_IF_ERROR(f->parse_header());
  return std::shared_ptr<const SafetensorsFile>(std::move(f));
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Expected<FileRange> SafetensorsFile::file_range(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return not_found(fmt::format("{}: no tensor '{}'", path().string(), name));
  const FileRange& r = ranges_[it->second];
  return FileRange{data_start_ + r.offset, r.size};
}

Expected<TensorView> SafetensorsFile::view(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return not_found(fmt::format("{}: no tensor '{}'", path().string(), name));
  TensorView v;
  v.info = tensors_[it->second];
  v.data = file_->data() + data_start_ + ranges_[it->second].offset;
  v.keepalive = std::shared_ptr<const void>(file_, file_.get());
  v.file_backed = true;
  return v;
}

}  // namespace rtnq
