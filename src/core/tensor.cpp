#include "rtnq/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace rtnq {

std::string shape_to_string(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

TensorView make_owned_f32(std::string name, Shape shape, float** out_ptr) {
  TensorView v;
  v.info.name = std::move(name);
  v.info.dtype = DType::kF32;
  v.info.shape = std::move(shape);
  auto buf = std::shared_ptr<float[]>(new float[size_t(v.info.numel())]);
  *out_ptr = buf.get();
  v.data = buf.get();
  v.keepalive = std::shared_ptr<const void>(buf, buf.get());
  return v;
}

void release_file_pages(const TensorView& v) {
  if (!v.file_backed || v.data == nullptr) return;
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(v.data) + page - 1) / page * page;
  const uintptr_t end = (uintptr_t(v.data) + v.nbytes()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

TensorView to_f32(const TensorView& v) {
  if (v.info.dtype == DType::kF32) return v;
  float* dst = nullptr;
  TensorView out = make_owned_f32(v.info.name, v.info.shape, &dst);
  convert_to_f32(v.data, v.info.dtype, dst, size_t(v.numel()));
  return out;
}

TensorView make_owned_from_f32(TensorInfo info, const float* src) {
  const size_t n = size_t(info.numel());
  auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[n * dtype_size(info.dtype)]);
  convert_from_f32(src, info.dtype, buf.get(), n);
  TensorView v;
  v.info = std::move(info);
  v.data = buf.get();
  v.keepalive = std::shared_ptr<const void>(buf, buf.get());
  return v;
}

TensorView to_dtype(const TensorView& v, DType dtype) {
  if (v.info.dtype == dtype) return v;
  TensorView f32 = to_f32(v);
  if (dtype == DType::kF32) return f32;
  TensorInfo info = v.info;
  info.dtype = dtype;
  return make_owned_from_f32(std::move(info), f32.as<float>());
}

}  // namespace rtnq
