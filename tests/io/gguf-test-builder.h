// Writes GGUF bytes by hand for tests: an independent little writer, so the reader is checked
// against the format as the spec states it rather than against itself.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "test-util.h"  // TempDir, source/models paths

namespace rtnq::test {

class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) : version_(version) {}

  // Scalars: `type` is the GGUF value type number, `bytes` its little-endian encoding.
  void kv_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> e;
    put_string(e, key);
    put_u32(e, type);
    e.insert(e.end(), payload.begin(), payload.end());
    kvs_.push_back(std::move(e));
  }
  void kv_u8(const std::string& k, uint8_t v) { kv_raw(k, 0, le(v)); }
  void kv_i8(const std::string& k, int8_t v) { kv_raw(k, 1, le(v)); }
  void kv_u16(const std::string& k, uint16_t v) { kv_raw(k, 2, le(v)); }
  void kv_i16(const std::string& k, int16_t v) { kv_raw(k, 3, le(v)); }
  void kv_u32(const std::string& k, uint32_t v) { kv_raw(k, 4, le(v)); }
  void kv_i32(const std::string& k, int32_t v) { kv_raw(k, 5, le(v)); }
  void kv_f32(const std::string& k, float v) { kv_raw(k, 6, le(v)); }
  void kv_bool(const std::string& k, bool v) { kv_raw(k, 7, {uint8_t(v ? 1 : 0)}); }
  void kv_u64(const std::string& k, uint64_t v) { kv_raw(k, 10, le(v)); }
  void kv_i64(const std::string& k, int64_t v) { kv_raw(k, 11, le(v)); }
  void kv_f64(const std::string& k, double v) { kv_raw(k, 12, le(v)); }
  void kv_string(const std::string& k, const std::string& v) {
    std::vector<uint8_t> p;
    put_string(p, v);
    kv_raw(k, 8, p);
  }
  void kv_string_array(const std::string& k, const std::vector<std::string>& v) {
    std::vector<uint8_t> p;
    put_u32(p, 8);
    put_u64(p, v.size());
    for (const auto& s : v) put_string(p, s);
    kv_raw(k, 9, p);
  }
  template <typename T>
  void kv_array(const std::string& k, uint32_t elem_type, const std::vector<T>& v) {
    std::vector<uint8_t> p;
    put_u32(p, elem_type);
    put_u64(p, v.size());
    for (const T& x : v) {
      auto b = le(x);
      p.insert(p.end(), b.begin(), b.end());
    }
    kv_raw(k, 9, p);
  }

  // A tensor: ne in GGUF order (ne[0] fastest), ggml type number, its bytes.
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::vector<uint8_t> data) {
    tensors_.push_back({name, std::move(ne), type, std::move(data)});
  }

  struct Built {
    std::vector<uint8_t> bytes;
    size_t data_offset = 0;
    std::vector<size_t> info_offset_field;  // byte position of each tensor's u64 offset field
    std::vector<size_t> info_start;          // byte position of each tensor info (its name length)
  };

  Built build(uint64_t alignment = 32) const {
    Built b;
    auto& out = b.bytes;
    for (char c : {'G', 'G', 'U', 'F'}) out.push_back(uint8_t(c));
    put_u32(out, version_);
    put_u64(out, tensors_.size());
    put_u64(out, kvs_.size());
    for (const auto& e : kvs_) out.insert(out.end(), e.begin(), e.end());
    uint64_t off = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors_) {
      b.info_start.push_back(out.size());
      put_string(out, t.name);
      put_u32(out, uint32_t(t.ne.size()));
      for (uint64_t d : t.ne) put_u64(out, d);
      put_u32(out, t.type);
      b.info_offset_field.push_back(out.size());
      put_u64(out, off);
      offsets.push_back(off);
      off = (off + t.data.size() + alignment - 1) / alignment * alignment;
    }
    while (out.size() % alignment) out.push_back(0);
    b.data_offset = out.size();
    for (size_t k = 0; k < tensors_.size(); ++k) {
      out.resize(b.data_offset + offsets[k], 0);
      out.insert(out.end(), tensors_[k].data.begin(), tensors_[k].data.end());
    }
    return b;
  }

  template <typename T>
  static std::vector<uint8_t> le(T v) {
    std::vector<uint8_t> b(sizeof(T));
    std::memcpy(b.data(), &v, sizeof(T));
    return b;
  }
  static void put_u32(std::vector<uint8_t>& o, uint32_t v) { auto b = le(v); o.insert(o.end(), b.begin(), b.end()); }
  static void put_u64(std::vector<uint8_t>& o, uint64_t v) { auto b = le(v); o.insert(o.end(), b.begin(), b.end()); }
  static void put_string(std::vector<uint8_t>& o, const std::string& s) {
    put_u64(o, s.size());
    o.insert(o.end(), s.begin(), s.end());
  }

 private:
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::vector<uint8_t> data;
  };
  uint32_t version_;
  std::vector<std::vector<uint8_t>> kvs_;
  std::vector<T> tensors_;
};

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

inline void patch_u64(std::vector<uint8_t>& bytes, size_t pos, uint64_t v) { std::memcpy(&bytes[pos], &v, 8); }
inline void patch_u32(std::vector<uint8_t>& bytes, size_t pos, uint32_t v) { std::memcpy(&bytes[pos], &v, 4); }

}  // namespace rtnq::test
