// Symmetric round-to-nearest (RTN) weight quantization, bit-exact with vLLM's `rtn` method and the
// compressed-tensors `pack-quantized` format:
//   s = round_to_dtype(absmax(group) / (2^(b-1) - 0.5), scale_dtype)
//   q = clamp(round_half_even(w / s), -2^(b-1), 2^(b-1) - 1)        (q = 0 where s == 0)
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "rtnq/dtype.h"
#include "rtnq/status.h"
#include "rtnq/tensor.h"

namespace rtnq {

class ThreadPool;

enum class Precision : uint8_t { kKeep, kInt8, kInt4 };
std::string_view precision_name(Precision p);  // "keep", "int8", "int4"
inline int precision_bits(Precision p) { return p == Precision::kInt8 ? 8 : p == Precision::kInt4 ? 4 : 0; }

inline constexpr int64_t kPerChannel = -1;  // group_size meaning "one group spanning the whole row"

struct QuantSpec {
  Precision precision = Precision::kKeep;
  int64_t group_size = 128;  // 32, 64, 128, ... or kPerChannel
  bool operator==(const QuantSpec&) const = default;
};
// Effective group length for a row of `cols` inputs.
inline int64_t effective_group(int64_t group_size, int64_t cols) { return group_size == kPerChannel ? cols : group_size; }

// A weight [rows = out_features, cols = in_features] after RTN, in checkpoint layout.
struct QuantizedTensor {
  int bits = 4;
  int64_t group_size = 128;  // as requested (kPerChannel stays -1)
  int64_t rows = 0, cols = 0;
  DType scale_dtype = DType::kBF16;
  std::vector<int32_t> packed;  // [rows, cols * bits / 32], see src/quant/pack-layout.h
  std::vector<uint8_t> scales;  // [rows, n_groups] in scale_dtype, raw bytes
  // Error statistics of dequant(q) against the input, accumulated in double.
  double sum_sq_error = 0.0;
  double sum_sq_weight = 0.0;
  double max_abs_error = 0.0;
  int64_t n_groups() const { return cols / effective_group(group_size, cols); }
  double relative_rms_error() const { return sum_sq_weight > 0 ? std::sqrt(sum_sq_error / sum_sq_weight) : 0.0; }
};

// The dtype torch computes the quotient w / s in when w is stored in `weight_dtype` and s in
// `scale_dtype` (both tensors, so ordinary type promotion): the weight's dtype when the two agree,
// fp32 otherwise. vLLM / compressed-tensors round the fp32 quotient to this dtype before rounding
// to an integer, and so must we (see src/quant/rtn-ref.cpp).
inline DType rtn_quotient_dtype(DType weight_dtype, DType scale_dtype) {
  return weight_dtype == scale_dtype ? weight_dtype : DType::kF32;
}

// Reference implementation (scalar, obviously right): the oracle for every other path.
// `q` receives rows*cols signed integers; `scales` rows*n_groups values, each exactly representable
// in `scale_dtype`. Refuses NaN/Inf (naming the flat index) and group sizes that do not divide cols.
// `quotient_dtype` (F32, F16 or BF16): the dtype w / s is rounded to before round-half-even, i.e.
// rtn_quotient_dtype(dtype the weights came in, scale_dtype).
Status rtn_quantize_ref(const float* w, int64_t rows, int64_t cols, int bits, int64_t group_size,
                        DType scale_dtype, int8_t* q, float* scales, DType quotient_dtype = DType::kF32);

// Fast path: any F32/F16/BF16 view [rows, cols] straight to checkpoint layout, over `pool` threads
// when given. Bit-identical to rtn_quantize_ref + pack. Errors name `w.info.name`.
Expected<QuantizedTensor> rtn_quantize(const TensorView& w, int bits, int64_t group_size,
                                       DType scale_dtype, ThreadPool* pool = nullptr);

}  // namespace rtnq
