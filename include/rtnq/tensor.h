// A read-only view of a tensor's bytes plus whatever keeps them alive (a memory map or a buffer).
#pragma once

#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "rtnq/dtype.h"

namespace rtnq {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, [](int64_t a, int64_t b) { return a * b; });
}
std::string shape_to_string(const Shape& s);  // "[576, 1536]"

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
};

struct TensorView {
  TensorInfo info;
  const void* data = nullptr;
  // Keeps `data` valid: the mapped file for zero-copy views, or an owned buffer.
  std::shared_ptr<const void> keepalive;
  // True for zero-copy views into a read-only file mapping: their pages may be handed back to the
  // kernel after use (release_file_pages) without losing data, which keeps streaming RSS bounded.
  bool file_backed = false;

  template <typename T>
  const T* as() const { return static_cast<const T*>(data); }
  int64_t numel() const { return info.numel(); }
  size_t nbytes() const { return info.nbytes(); }
};

// A view that owns a freshly allocated fp32 buffer of `shape`; returns the writable pointer too.
TensorView make_owned_f32(std::string name, Shape shape, float** out_ptr);
// Drop the resident pages wholly inside a file-backed view (no-op for other views); the data is
// read again from the file if touched later.
void release_file_pages(const TensorView& v);
// Any float view as contiguous fp32 (zero-copy when already F32).
TensorView to_f32(const TensorView& v);
// A view of `info` (F32/F16/BF16) owning info.numel() values converted from `src` (round to nearest even).
TensorView make_owned_from_f32(TensorInfo info, const float* src);
// Any float view in `dtype` (zero-copy when it already is).
TensorView to_dtype(const TensorView& v, DType dtype);

}  // namespace rtnq
