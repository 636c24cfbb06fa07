// GGUF (v2, v3) reader: metadata and tensor infos parsed and validated once, tensor bytes served
// zero-copy from the memory map. Little-endian files only.
//
// Layout: "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv pairs (string key, u32 value type,
// value), tensor infos (string name, u32 n_dims, u64 ne[n_dims] with ne[0] fastest, u32 ggml type,
// u64 offset into the data section), then the data section at the next multiple of
// `general.alignment` (default 32). Strings are u64 length + bytes, no terminator.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/mapped-file.h"
#include "rtnq/status.h"

namespace rtnq {

// ggml tensor types, numbered as in ggml.h (gaps are types ggml removed).
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kIQ2_XXS = 16, kIQ2_XS = 17, kIQ3_XXS = 18, kIQ1_S = 19, kIQ4_NL = 20, kIQ3_S = 21, kIQ2_S = 22,
  kIQ4_XS = 23, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kIQ1_M = 29, kBF16 = 30,
  kTQ1_0 = 34, kTQ2_0 = 35, kMXFP4 = 39,
};

// Elements per block and bytes per block of a ggml type; nullopt for numbers ggml does not define.
struct GgmlTypeTraits {
  int64_t block_size;
  int64_t type_size;
};
std::optional<GgmlTypeTraits> ggml_type_traits(GgmlType t);
// "Q4_K", "F16", ...; "ggml type 99" for unknown numbers.
std::string ggml_type_name(GgmlType t);

// GGUF metadata value types, numbered as in the spec.
enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType t);  // "u32", "string", "array", ...

// One metadata value. Strings point into the map (zero-copy). Arrays of numbers stay raw bytes
// (a million-element array costs no allocation); arrays of strings or arrays are expanded into
// `items`, which is bounded by the file size since every such element takes at least 8 bytes.
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  uint64_t u = 0;          // unsigned integers and bool
  int64_t i = 0;           // signed integers
  double f = 0.0;          // f32 / f64
  std::string_view str;    // kString
  // kArray:
  GgufValueType elem_type = GgufValueType::kU8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;   // numeric/bool arrays: count little-endian elements
  std::vector<GgufValue> items;   // string and nested arrays

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::kF32 || type == GgufValueType::kF64; }
  // Any integer type as int64 (nullopt for u64 values above INT64_MAX or non-integers).
  std::optional<int64_t> as_int() const;
  // f32, f64 or any integer as double.
  std::optional<double> as_double() const;
  // Element `k` of a numeric array as int64 / double (nullopt when out of range or not numeric).
  std::optional<int64_t> int_at(uint64_t k) const;
  std::optional<double> float_at(uint64_t k) const;
};

// Human-readable rendering for `inspect`: scalars as written, strings quoted and cut after
// `max_chars`, arrays as "[array of N string: "a", "b", ...]" listing at most `max_items`.
std::string format_gguf_value(const GgufValue& v, size_t max_items = 6, size_t max_chars = 120);

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;   // GGUF order: ne[0] varies fastest (HF shape is this reversed)
  uint64_t offset = 0;       // from the start of the data section
  uint64_t nbytes = 0;
  int64_t numel() const;
};

class GgufFile {
 public:
  // Parse and validate everything except the tensor bytes themselves. Errors name the file and
  // the key or tensor at fault.
  static Expected<std::shared_ptr<const GgufFile>> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return map_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::shared_ptr<const MappedFile>& mapped() const { return map_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  // Typed look-ups: nullopt when the key is missing or holds another type.
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;    // any integer type
  std::optional<double> get_float(std::string_view key) const;   // f32, f64 or an integer
  std::optional<bool> get_bool(std::string_view key) const;
  // Arrays: not_found when missing; corrupt (naming file and key) when not an array of that kind.
  Expected<const GgufValue*> get_array(std::string_view key) const;
  Expected<std::vector<std::string_view>> get_string_array(std::string_view key) const;
  Expected<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Expected<std::vector<double>> get_float_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the map (valid while this GgufFile lives); not_found naming it.
  Expected<std::span<const uint8_t>> tensor_data(std::string_view name) const;
  std::span<const uint8_t> tensor_data(const GgufTensorInfo& t) const;

 private:
  GgufFile() = default;
  friend class GgufParser;
  std::shared_ptr<const MappedFile> map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace rtnq
