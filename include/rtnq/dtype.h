// Element types of tensors in checkpoints, and exact scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace rtnq {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI8, kU8, kI16, kI32, kI64, kBool };

size_t dtype_size(DType t);
// Safetensors spelling: "F32", "F16", "BF16", "I8", ...
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view safetensors_name);
// torch spelling used in config.json: "float32", "float16", "bfloat16".
std::string_view dtype_torch_name(DType t);
std::optional<DType> dtype_from_torch_name(std::string_view name);
inline bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

inline float bits_to_f32(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }
// Round to nearest even, as torch does; NaN stays a (quiet) NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t b = f32_to_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return uint16_t((b >> 16) | 0x40);
  b += 0x7fffu + ((b >> 16) & 1u);
  return uint16_t(b >> 16);
}

// IEEE binary16 <-> binary32, round to nearest even, subnormals and Inf/NaN handled.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Value of `f` after a round trip through `t` (identity for F32): how a scale is "rounded to the
// checkpoint's scale dtype" before it is used to quantize.
float round_to_dtype(float f, DType t);

// Bulk conversion of n floating-point elements to fp32 (vectorised for F16/BF16).
void convert_to_f32(const void* src, DType t, float* dst, size_t n);
// Bulk conversion from fp32 to F32/F16/BF16 (round to nearest even).
void convert_from_f32(const float* src, DType t, void* dst, size_t n);

}  // namespace rtnq
