#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace rtnq {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader maps little-endian files directly; a big-endian host needs byte swaps");

namespace {

// Sanity limits: far above any real model, far below what would let a corrupt count exhaust memory.
constexpr uint64_t kMaxKeyLength = 65535;          // the spec's own limit for keys
constexpr uint64_t kMaxTensorNameLength = 65535;
constexpr uint64_t kMaxKvCount = 1u << 20;
constexpr uint64_t kMaxTensorCount = 1u << 20;
constexpr int kMaxArrayDepth = 8;
constexpr int kMaxDims = 4;                        // GGML_MAX_DIMS
constexpr uint64_t kMaxAlignment = 1u << 20;
constexpr int64_t kMaxNumel = int64_t{1} << 48;

size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kString: case GgufValueType::kArray: return 0;
  }
  return 0;
}

bool valid_value_type(uint32_t t) { return t <= uint32_t(GgufValueType::kF64); }

// Decode one little-endian scalar of type `t` at `p` into the matching field of `v`.
void decode_scalar(GgufValueType t, const uint8_t* p, GgufValue* v) {
  v->type = t;
  switch (t) {
    case GgufValueType::kU8: v->u = p[0]; break;
    case GgufValueType::kBool: v->u = p[0] != 0; break;
    case GgufValueType::kI8: v->i = int8_t(p[0]); break;
    case GgufValueType::kU16: { uint16_t x; std::memcpy(&x, p, 2); v->u = x; break; }
    case GgufValueType::kI16: { int16_t x; std::memcpy(&x, p, 2); v->i = x; break; }
    case GgufValueType::kU32: { uint32_t x; std::memcpy(&x, p, 4); v->u = x; break; }
    case GgufValueType::kI32: { int32_t x; std::memcpy(&x, p, 4); v->i = x; break; }
    case GgufValueType::kU64: { uint64_t x; std::memcpy(&x, p, 8); v->u = x; break; }
    case GgufValueType::kI64: { int64_t x; std::memcpy(&x, p, 8); v->i = x; break; }
    case GgufValueType::kF32: { float x; std::memcpy(&x, p, 4); v->f = x; break; }
    case GgufValueType::kF64: { double x; std::memcpy(&x, p, 8); v->f = x; break; }
    case GgufValueType::kString: case GgufValueType::kArray: break;
  }
}

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::kU8 || t == GgufValueType::kU16 || t == GgufValueType::kU32 ||
         t == GgufValueType::kU64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::kI8 || t == GgufValueType::kI16 || t == GgufValueType::kI32 ||
         t == GgufValueType::kI64;
}

std::string quote(std::string_view s, size_t max_chars) {
  std::string out = "\"";
  const size_t n = std::min(s.size(), max_chars);
  for (size_t k = 0; k < n; ++k) {
    const unsigned char c = static_cast<unsigned char>(s[k]);
    if (c == '"' || c == '\\') { out += '\\'; out += char(c); }
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += char(c);
  }
  out += '"';
  if (s.size() > max_chars) out += fmt::format("...({} bytes)", s.size());
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Type tables

std::optional<GgmlTypeTraits> ggml_type_traits(GgmlType t) {
  // Block sizes and bytes per block, as ggml-common.h defines the block structs.
  switch (t) {
    case GgmlType::kF32: return GgmlTypeTraits{1, 4};
    case GgmlType::kF16: return GgmlTypeTraits{1, 2};
    case GgmlType::kBF16: return GgmlTypeTraits{1, 2};
    case GgmlType::kF64: return GgmlTypeTraits{1, 8};
    case GgmlType::kI8: return GgmlTypeTraits{1, 1};
    case GgmlType::kI16: return GgmlTypeTraits{1, 2};
    case GgmlType::kI32: return GgmlTypeTraits{1, 4};
    case GgmlType::kI64: return GgmlTypeTraits{1, 8};
    case GgmlType::kQ4_0: return GgmlTypeTraits{32, 18};
    case GgmlType::kQ4_1: return GgmlTypeTraits{32, 20};
    case GgmlType::kQ5_0: return GgmlTypeTraits{32, 22};
    case GgmlType::kQ5_1: return GgmlTypeTraits{32, 24};
    case GgmlType::kQ8_0: return GgmlTypeTraits{32, 34};
    case GgmlType::kQ8_1: return GgmlTypeTraits{32, 36};
    case GgmlType::kIQ4_NL: return GgmlTypeTraits{32, 18};
    case GgmlType::kMXFP4: return GgmlTypeTraits{32, 17};
    case GgmlType::kQ2_K: return GgmlTypeTraits{256, 84};
    case GgmlType::kQ3_K: return GgmlTypeTraits{256, 110};
    case GgmlType::kQ4_K: return GgmlTypeTraits{256, 144};
    case GgmlType::kQ5_K: return GgmlTypeTraits{256, 176};
    case GgmlType::kQ6_K: return GgmlTypeTraits{256, 210};
    case GgmlType::kQ8_K: return GgmlTypeTraits{256, 292};
    case GgmlType::kIQ2_XXS: return GgmlTypeTraits{256, 66};
    case GgmlType::kIQ2_XS: return GgmlTypeTraits{256, 74};
    case GgmlType::kIQ3_XXS: return GgmlTypeTraits{256, 98};
    case GgmlType::kIQ1_S: return GgmlTypeTraits{256, 50};
    case GgmlType::kIQ3_S: return GgmlTypeTraits{256, 110};
    case GgmlType::kIQ2_S: return GgmlTypeTraits{256, 82};
    case GgmlType::kIQ4_XS: return GgmlTypeTraits{256, 136};
    case GgmlType::kIQ1_M: return GgmlTypeTraits{256, 56};
    case GgmlType::kTQ1_0: return GgmlTypeTraits{256, 54};
    case GgmlType::kTQ2_0: return GgmlTypeTraits{256, 66};
  }
  return std::nullopt;
}

std::string ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: return "F32";
    case GgmlType::kF16: return "F16";
    case GgmlType::kBF16: return "BF16";
    case GgmlType::kF64: return "F64";
    case GgmlType::kI8: return "I8";
    case GgmlType::kI16: return "I16";
    case GgmlType::kI32: return "I32";
    case GgmlType::kI64: return "I64";
    case GgmlType::kQ4_0: return "Q4_0";
    case GgmlType::kQ4_1: return "Q4_1";
    case GgmlType::kQ5_0: return "Q5_0";
    case GgmlType::kQ5_1: return "Q5_1";
    case GgmlType::kQ8_0: return "Q8_0";
    case GgmlType::kQ8_1: return "Q8_1";
    case GgmlType::kIQ4_NL: return "IQ4_NL";
    case GgmlType::kMXFP4: return "MXFP4";
    case GgmlType::kQ2_K: return "Q2_K";
    case GgmlType::kQ3_K: return "Q3_K";
    case GgmlType::kQ4_K: return "Q4_K";
    case GgmlType::kQ5_K: return "Q5_K";
    case GgmlType::kQ6_K: return "Q6_K";
    case GgmlType::kQ8_K: return "Q8_K";
    case GgmlType::kIQ2_XXS: return "IQ2_XXS";
    case GgmlType::kIQ2_XS: return "IQ2_XS";
    case GgmlType::kIQ3_XXS: return "IQ3_XXS";
    case GgmlType::kIQ1_S: return "IQ1_S";
    case GgmlType::kIQ3_S: return "IQ3_S";
    case GgmlType::kIQ2_S: return "IQ2_S";
    case GgmlType::kIQ4_XS: return "IQ4_XS";
    case GgmlType::kIQ1_M: return "IQ1_M";
    case GgmlType::kTQ1_0: return "TQ1_0";
    case GgmlType::kTQ2_0: return "TQ2_0";
  }
  return fmt::format("ggml type {}", uint32_t(t));
}

std::string_view gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: return "u8";
    case GgufValueType::kI8: return "i8";
    case GgufValueType::kU16: return "u16";
    case GgufValueType::kI16: return "i16";
    case GgufValueType::kU32: return "u32";
    case GgufValueType::kI32: return "i32";
    case GgufValueType::kF32: return "f32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kU64: return "u64";
    case GgufValueType::kI64: return "i64";
    case GgufValueType::kF64: return "f64";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// GgufValue

bool GgufValue::is_integer() const { return is_unsigned(type) || is_signed(type); }

std::optional<int64_t> GgufValue::as_int() const {
  if (is_signed(type)) return i;
  if (is_unsigned(type)) {
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(u);
  }
  return std::nullopt;
}

std::optional<double> GgufValue::as_double() const {
  if (is_float()) return f;
  if (is_signed(type)) return double(i);
  if (is_unsigned(type)) return double(u);
  return std::nullopt;
}

std::optional<int64_t> GgufValue::int_at(uint64_t k) const {
  if (type != GgufValueType::kArray || !raw || k >= count) return std::nullopt;
  if (!is_signed(elem_type) && !is_unsigned(elem_type) && elem_type != GgufValueType::kBool) return std::nullopt;
  GgufValue e;
  decode_scalar(elem_type, raw + k * scalar_size(elem_type), &e);
  if (elem_type == GgufValueType::kBool) return int64_t(e.u);
  return e.as_int();
}

std::optional<double> GgufValue::float_at(uint64_t k) const {
  if (type != GgufValueType::kArray || !raw || k >= count) return std::nullopt;
  if (elem_type == GgufValueType::kBool) return std::nullopt;
  GgufValue e;
  decode_scalar(elem_type, raw + k * scalar_size(elem_type), &e);
  return e.as_double();
}

std::string format_gguf_value(const GgufValue& v, size_t max_items, size_t max_chars) {
  switch (v.type) {
    case GgufValueType::kBool: return v.u ? "true" : "false";
    case GgufValueType::kF32: case GgufValueType::kF64: return fmt::format("{}", v.f);
    case GgufValueType::kString: return quote(v.str, max_chars);
    case GgufValueType::kArray: {
      std::string out = fmt::format("[{} x {}", v.count, gguf_value_type_name(v.elem_type));
      const uint64_t shown = std::min<uint64_t>(v.count, max_items);
      for (uint64_t k = 0; k < shown; ++k) {
        out += k == 0 ? ": " : ", ";
        if (v.raw) {
          GgufValue e;
          decode_scalar(v.elem_type, v.raw + k * scalar_size(v.elem_type), &e);
          out += format_gguf_value(e, max_items, max_chars);
        } else {
          out += format_gguf_value(v.items[k], max_items, max_chars);
        }
      }
      if (v.count > shown) out += ", ...";
      return out + "]";
    }
    default:
      if (is_signed(v.type)) return fmt::format("{}", v.i);
      return fmt::format("{}", v.u);
  }
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Parser

class GgufParser {
 public:
  explicit GgufParser(GgufFile* f) : f_(f), base_(f->map_->data()), size_(f->map_->size()) {}

  Status parse();

 private:
  std::string file() const { return f_->map_->path().string(); }
  Status truncated(const std::string& what) const {
    return corrupt(fmt::format("{}: file ends while reading {} at byte {} (file is {} bytes)", file(), what,
                               pos_, size_));
  }
  size_t remaining() const { return size_ - pos_; }
  bool take(size_t n, const uint8_t** p) {
    if (n > remaining()) return false;
    *p = base_ + pos_;
    pos_ += n;
    return true;
  }
  template <typename T>
  bool read(T* out) {
    const uint8_t* p;
    if (!take(sizeof(T), &p)) return false;
    std::memcpy(out, p, sizeof(T));
    return true;
  }
  Status read_string(std::string_view* out, uint64_t max_len, const std::string& what);
  Status read_value(GgufValueType t, GgufValue* out, const std::string& key, int depth);
  Status read_kv(uint64_t index);
  Status read_tensor_info(uint64_t index);
  Status check_layout();

  GgufFile* f_;
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
};

Status GgufParser::read_string(std::string_view* out, uint64_t max_len, const std::string& what) {
  uint64_t len = 0;
  if (!read(&len)) return truncated(what + " (string length)");
  if (len > max_len)
    return corrupt(fmt::format("{}: {}: string length {} exceeds the limit of {}", file(), what, len, max_len));
  const uint8_t* p;
  if (!take(size_t(len), &p))
    return corrupt(fmt::format("{}: {}: string of {} bytes at byte {} runs past the end of the file ({} bytes)",
                               file(), what, len, pos_, size_));
  *out = std::string_view(reinterpret_cast<const char*>(p), size_t(len));
  return Status::ok();
}

Status GgufParser::read_value(GgufValueType t, GgufValue* out, const std::string& key, int depth) {
  const std::string what = "key '" + key + "'";
  out->type = t;
  if (t == GgufValueType::kString) return read_string(&out->str, std::numeric_limits<uint64_t>::max(), what);
  if (t != GgufValueType::kArray) {
    const uint8_t* p;
    if (!take(scalar_size(t), &p)) return truncated(what + " (" + std::string(gguf_value_type_name(t)) + " value)");
    decode_scalar(t, p, out);
    return Status::ok();
  }
  if (depth >= kMaxArrayDepth)
    return corrupt(fmt::format("{}: {}: arrays nested deeper than {}", file(), what, kMaxArrayDepth));
  uint32_t et = 0;
  if (!read(&et)) return truncated(what + " (array element type)");
  if (!valid_value_type(et))
    return corrupt(fmt::format("{}: {}: unknown array element type {}", file(), what, et));
  out->elem_type = GgufValueType(et);
  if (!read(&out->count)) return truncated(what + " (array length)");
  const size_t esize = scalar_size(out->elem_type);
  // Every element takes at least this many bytes, so a count the file cannot hold is caught
  // before anything is allocated for it.
  const uint64_t min_elem_bytes = esize ? esize : out->elem_type == GgufValueType::kString ? 8 : 12;
  if (out->count > remaining() / min_elem_bytes)
    return corrupt(fmt::format("{}: {}: array of {} {} elements at byte {} cannot fit in the {} bytes left",
                               file(), what, out->count, gguf_value_type_name(out->elem_type), pos_, remaining()));
  if (esize) {
    const uint8_t* p = nullptr;
    if (!take(size_t(out->count) * esize, &p)) return truncated(what + " (array data)");
    out->raw = p;
    return Status::ok();
  }
  out->items.resize(size_t(out->count));
  if (out->elem_type == GgufValueType::kString) {
    // Vocabularies hold ~10^5 strings: read them without building a name for each; on failure
    // step back and let read_string report it with the element's name.
    for (uint64_t k = 0; k < out->count; ++k) {
      const size_t start = pos_;
      uint64_t len = 0;
      const uint8_t* p = nullptr;
      if (!read(&len) || !take(size_t(std::min<uint64_t>(len, remaining() + 1)), &p)) {
        pos_ = start;
        std::string_view ignored;
        RTNQ_RETURN_IF_ERROR(read_string(&ignored, std::numeric_limits<uint64_t>::max(),
                                         fmt::format("key '{}[{}]'", key, k)));
        return corrupt(fmt::format("{}: key '{}[{}]': unreadable string", file(), key, k));  // not reached
      }
      out->items[k].type = GgufValueType::kString;
      out->items[k].str = std::string_view(reinterpret_cast<const char*>(p), size_t(len));
    }
    return Status::ok();
  }
  for (uint64_t k = 0; k < out->count; ++k) {
    RTNQ_RETURN_IF_ERROR(read_value(out->elem_type, &out->items[k], fmt::format("{}[{}]", key, k), depth + 1));
  }
  return Status::ok();
}

Status GgufParser::read_kv(uint64_t index) {
  std::string_view key;
  RTNQ_RETURN_IF_ERROR(read_string(&key, kMaxKeyLength, fmt::format("metadata key #{}", index)));
  if (key.empty()) return corrupt(fmt::format("{}: metadata key #{} is empty", file(), index));
  std::string k(key);
  uint32_t t = 0;
  if (!read(&t)) return truncated("the value type of key '" + k + "'");
  if (!valid_value_type(t)) return corrupt(fmt::format("{}: key '{}': unknown value type {}", file(), k, t));
  GgufValue v;
  RTNQ_RETURN_IF_ERROR(read_value(GgufValueType(t), &v, k, 0));
  if (!f_->kv_index_.emplace(k, f_->kv_.size()).second)
    return corrupt(fmt::format("{}: metadata key '{}' appears twice", file(), k));
  f_->kv_.emplace_back(std::move(k), std::move(v));
  return Status::ok();
}

Status GgufParser::read_tensor_info(uint64_t index) {
  std::string_view name;
  RTNQ_RETURN_IF_ERROR(read_string(&name, kMaxTensorNameLength, fmt::format("the name of tensor #{}", index)));
  if (name.empty()) return corrupt(fmt::format("{}: tensor #{} has an empty name", file(), index));
  GgufTensorInfo ti;
  ti.name = std::string(name);
  const std::string what = "tensor '" + ti.name + "'";
  uint32_t n_dims = 0;
  if (!read(&n_dims)) return truncated(what + " (n_dims)");
  if (n_dims < 1 || n_dims > uint32_t(kMaxDims))
    return corrupt(fmt::format("{}: {}: n_dims is {}, expected 1 to {}", file(), what, n_dims, kMaxDims));
  int64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = 0;
    if (!read(&ne)) return truncated(what + " (dimensions)");
    if (ne == 0 || ne > uint64_t(kMaxNumel) || numel > kMaxNumel / int64_t(ne))
      return corrupt(fmt::format("{}: {}: dimension {} is {}, expected 1 to {} elements in all", file(), what, d,
                                 ne, kMaxNumel));
    ti.ne.push_back(int64_t(ne));
    numel *= int64_t(ne);
  }
  uint32_t type = 0;
  if (!read(&type)) return truncated(what + " (type)");
  ti.type = GgmlType(type);
  const auto traits = ggml_type_traits(ti.type);
  if (!traits) return unsupported(fmt::format("{}: {}: unknown ggml type {}", file(), what, type));
  if (ti.ne[0] % traits->block_size != 0)
    return corrupt(fmt::format("{}: {}: ne[0] = {} is not a multiple of the {} block size {}", file(), what,
                               ti.ne[0], ggml_type_name(ti.type), traits->block_size));
  ti.nbytes = uint64_t(numel / traits->block_size) * uint64_t(traits->type_size);
  if (!read(&ti.offset)) return truncated(what + " (data offset)");
  if (!f_->tensor_index_.emplace(ti.name, f_->tensors_.size()).second)
    return corrupt(fmt::format("{}: tensor '{}' appears twice", file(), ti.name));
  f_->tensors_.push_back(std::move(ti));
  return Status::ok();
}

Status GgufParser::check_layout() {
  const uint64_t align = f_->alignment_;
  const uint64_t data_offset = (uint64_t(pos_) + align - 1) / align * align;
  f_->data_offset_ = data_offset;
  const uint64_t data_size = data_offset <= size_ ? size_ - data_offset : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(f_->tensors_.size());
  for (const auto& t : f_->tensors_) {
    if (t.offset % align != 0)
      return corrupt(fmt::format("{}: tensor '{}': data offset {} is not a multiple of the alignment {}", file(),
                                 t.name, t.offset, align));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      return corrupt(fmt::format("{}: tensor '{}': {} bytes of {} {} at data offset {} run past the end of the "
                                 "file (data section holds {} bytes from byte {})",
                                 file(), t.name, t.nbytes, ggml_type_name(t.type),
                                 fmt::format("[{}]", fmt::join(t.ne, ", ")), t.offset, data_size, data_offset));
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const auto* prev = by_offset[k - 1];
    const auto* cur = by_offset[k];
    if (prev->offset + prev->nbytes > cur->offset)
      return corrupt(fmt::format("{}: tensors '{}' (bytes {}..{}) and '{}' (from byte {}) overlap", file(),
                                 prev->name, prev->offset, prev->offset + prev->nbytes, cur->name, cur->offset));
  }
  return Status::ok();
}

Status GgufParser::parse() {
  const uint8_t* magic;
  if (!take(4, &magic) || std::memcmp(magic, "GGUF", 4) != 0)
    return corrupt(fmt::format("{}: not a GGUF file (expected the magic \"GGUF\" in the first 4 bytes)", file()));
  uint32_t version = 0;
  if (!read(&version)) return truncated("the version");
  if (version == 1)
    return unsupported(fmt::format("{}: GGUF version 1 is not supported (only 2 and 3); re-convert the model "
                                   "with a current llama.cpp",
                                   file()));
  if ((version & 0xffff) == 0 && version != 0)
    return unsupported(fmt::format("{}: looks like a big-endian GGUF (version field {:#x}); only little-endian "
                                   "files are supported",
                                   file(), version));
  if (version != 2 && version != 3)
    return unsupported(fmt::format("{}: GGUF version {} is not supported (only 2 and 3)", file(), version));
  f_->version_ = version;
  uint64_t tensor_count = 0, kv_count = 0;
  if (!read(&tensor_count)) return truncated("the tensor count");
  if (!read(&kv_count)) return truncated("the metadata count");
  if (tensor_count > kMaxTensorCount)
    return corrupt(fmt::format("{}: tensor count {} exceeds the limit of {}", file(), tensor_count, kMaxTensorCount));
  if (kv_count > kMaxKvCount)
    return corrupt(fmt::format("{}: metadata count {} exceeds the limit of {}", file(), kv_count, kMaxKvCount));
  f_->kv_.reserve(size_t(std::min<uint64_t>(kv_count, remaining() / 13)));
  for (uint64_t k = 0; k < kv_count; ++k) RTNQ_RETURN_IF_ERROR(read_kv(k));

  if (const GgufValue* a = f_->find("general.alignment")) {
    const auto v = a->as_int();
    if (!v || *v <= 0 || uint64_t(*v) > kMaxAlignment || !std::has_single_bit(uint64_t(*v)))
      return corrupt(fmt::format("{}: key 'general.alignment' is {}, expected a power of two up to {}", file(),
                                 format_gguf_value(*a), kMaxAlignment));
    f_->alignment_ = uint64_t(*v);
  }

  // A tensor info takes at least 8 (name length) + 1 + 4 + 8 + 4 + 8 bytes.
  if (tensor_count > remaining() / 33)
    return corrupt(fmt::format("{}: {} tensor infos cannot fit in the {} bytes left after the metadata", file(),
                               tensor_count, remaining()));
  f_->tensors_.reserve(size_t(tensor_count));
  for (uint64_t k = 0; k < tensor_count; ++k) RTNQ_RETURN_IF_ERROR(read_tensor_info(k));
  return check_layout();
}

// ---------------------------------------------------------------------------------------------
// GgufFile

Expected<std::shared_ptr<const GgufFile>> GgufFile::open(const std::filesystem::path& path) {
  RTNQ_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  auto f = std::shared_ptr<GgufFile>(new GgufFile());
  f->map_ = std::move(map);
  GgufParser parser(f.get());
  RTNQ_RETURN_IF_ERROR(parser.parse());
  return std::shared_ptr<const GgufFile>(std::move(f));
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::optional<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v || v->type != GgufValueType::kString) return std::nullopt;
  return v->str;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  return v ? v->as_int() : std::nullopt;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  return v ? v->as_double() : std::nullopt;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v || v->type != GgufValueType::kBool) return std::nullopt;
  return v->u != 0;
}

Expected<const GgufValue*> GgufFile::get_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return not_found(fmt::format("{}: no metadata key '{}'", path().string(), key));
  if (v->type != GgufValueType::kArray)
    return corrupt(fmt::format("{}: key '{}' is a {}, expected an array", path().string(), key,
                               gguf_value_type_name(v->type)));
  return v;
}

Expected<std::vector<std::string_view>> GgufFile::get_string_array(std::string_view key) const {
  RTNQ_ASSIGN_OR_RETURN(const GgufValue* v, get_array(key));
  if (v->elem_type != GgufValueType::kString)
    return corrupt(fmt::format("{}: key '{}' is an array of {}, expected strings", path().string(), key,
                               gguf_value_type_name(v->elem_type)));
  std::vector<std::string_view> out;
  out.reserve(v->items.size());
  for (const auto& e : v->items) out.push_back(e.str);
  return out;
}

Expected<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  RTNQ_ASSIGN_OR_RETURN(const GgufValue* v, get_array(key));
  if (!is_signed(v->elem_type) && !is_unsigned(v->elem_type))
    return corrupt(fmt::format("{}: key '{}' is an array of {}, expected integers", path().string(), key,
                               gguf_value_type_name(v->elem_type)));
  std::vector<int64_t> out(size_t(v->count));
  for (uint64_t k = 0; k < v->count; ++k) {
    const auto x = v->int_at(k);
    if (!x) return corrupt(fmt::format("{}: key '{}'[{}] does not fit in int64", path().string(), key, k));
    out[size_t(k)] = *x;
  }
  return out;
}

Expected<std::vector<double>> GgufFile::get_float_array(std::string_view key) const {
  RTNQ_ASSIGN_OR_RETURN(const GgufValue* v, get_array(key));
  if (!v->raw || v->elem_type == GgufValueType::kBool)
    return corrupt(fmt::format("{}: key '{}' is an array of {}, expected numbers", path().string(), key,
                               gguf_value_type_name(v->elem_type)));
  std::vector<double> out(size_t(v->count));
  for (uint64_t k = 0; k < v->count; ++k) out[size_t(k)] = *v->float_at(k);
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return {map_->data() + data_offset_ + t.offset, size_t(t.nbytes)};
}

Expected<std::span<const uint8_t>> GgufFile::tensor_data(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) return not_found(fmt::format("{}: no tensor '{}'", path().string(), name));
  return tensor_data(*t);
}

}  // namespace rtnq
