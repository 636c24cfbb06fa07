// rtn_quantize_ref: the scalar oracle of symmetric round-to-nearest quantization.
//
// What the two libraries we must match actually compute (read from their sources):
//
// vLLM, vllm/model_executor/layers/quantization/rtn.py, rtn_quantize(tensor, num_bits, group_size):
//   - groups are consecutive runs of `group_size` elements of a row (group_size -1: the whole row);
//   - scale = absmax * 2.0 / (2^b - 1), in the tensor's own dtype. Multiplying by 2 is exact, so
//     this is round_to_dtype(fl32(absmax / (2^(b-1) - 0.5))), the formula in rtnq/quant.h;
//   - q = clamp(round(w / scale) + 2^(b-1), 0, 2^b - 1) as uint8, i.e. the signed value
//     clamp(round(w / scale), -2^(b-1), 2^(b-1) - 1) plus the offset;
//   - its own in-memory packing (two nibbles per uint8, runtime only) is not a checkpoint format.
//
// compressed-tensors, quantization/utils/helpers.py, calculate_qparams (symmetric int):
//   - bit_range = q_max - q_min = 2^b - 1; scales = max(|min|, |max|) / (bit_range / 2), the same
//     formula; with `scale_dtype` set it is then rounded to that dtype;
//   - zero scales are replaced by the scale dtype's eps *before* quantizing. rtnq keeps the scale at
//     0 instead (the contract in quant.h): the integers and the dequantized values agree (q = 0,
//     0 * anything = 0); only the stored scale of an all-zero group differs (0 versus eps).
// compressed-tensors, quantization/lifecycle/forward.py, _quantize + quant_args.py
// round_to_quantized_type_args:
//   - scaled = x / scale; (+ zero_point, which is 0 for symmetric); clamp(scaled, q_min, q_max);
//     torch.round (round half to even); cast. Clamping before rounding with integer bounds gives
//     the same integer as rounding before clamping, so the order does not matter.
// compressed-tensors, compressors/quantized_compressors/pack_quantized.py, pack_to_int32: see
//   src/quant/pack-layout.h (q + 2^(b-1), packed along the last dim, low bits first, zero padding).
//
// The dtype of the quotient is the subtle part. `x / scale` with x and scale both bf16 (or both
// fp16) tensors is a bf16 (fp16) op in torch: ATen computes it in fp32 ("opmath": float(a) /
// float(b), a true division, not a multiplication by a reciprocal, which ATen only does when the
// divisor is a CPU scalar) and rounds the result to bf16 (fp16), round to nearest even, *before*
// torch.round sees it. With bf16's 8 significant bits that matters a lot for INT8 (a quotient of
// 101.3 becomes 101.5 and then 102, not 101) and occasionally for INT4. When the two dtypes differ
// (bf16 weights, fp32 scales), torch promotes both tensors to fp32 and the quotient is plain fp32;
// rtn_quotient_dtype() in quant.h encodes that rule. So this reference computes, per weight:
//     x = round_to_dtype(fl32(w / s), quotient_dtype);  q = clamp(round_half_even(x), q_min, q_max).
//
// Where the formula has no defined answer we choose, and the fast path copies the choice:
//   - s == 0 (an all-zero group, or an F16 scale that underflows to 0): q = 0, no division;
//   - a scale that overflows its dtype (F16 scale of a group with absmax > ~491k) is refused;
//   - NaN or Inf weights are refused, naming the first one's flat index, row and column.
#include <cmath>
#include <cstdint>

#include <fmt/format.h>

#include "quant/pack-layout.h"
#include "rtnq/quant.h"

namespace rtnq {

namespace {

bool is_rtn_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

Status rtn_quantize_ref(const float* w, int64_t rows, int64_t cols, int bits, int64_t group_size,
                        DType scale_dtype, int8_t* q, float* scales, DType quotient_dtype) {
  if (bits != 4 && bits != 8) return invalid_argument(fmt::format("RTN supports 4 or 8 bits, got {}", bits));
  if (rows < 0 || cols <= 0) return invalid_argument(fmt::format("RTN needs a [rows, cols] matrix, got [{}, {}]", rows, cols));
  if (!is_rtn_float(scale_dtype))
    return invalid_argument(fmt::format("scale dtype must be F32, F16 or BF16, got {}", dtype_name(scale_dtype)));
  if (!is_rtn_float(quotient_dtype))
    return invalid_argument(fmt::format("quotient dtype must be F32, F16 or BF16, got {}", dtype_name(quotient_dtype)));
  if (group_size != kPerChannel && (group_size <= 0 || cols % group_size != 0))
    return invalid_argument(fmt::format("group size {} does not divide the {} input columns", group_size, cols));

  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(w[i]))
      return invalid_argument(fmt::format("weight at flat index {} (row {}, col {}) is {}; RTN needs finite weights", i,
                                          i / cols, i % cols, w[i]));

  const int64_t group = effective_group(group_size, cols);
  const int64_t n_groups = cols / group;
  const float max_abs_q = float(pack_offset(bits)) - 0.5f;  // 7.5 or 127.5
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < n_groups; ++g) {
      const float* wg = w + r * cols + g * group;
      int8_t* qg = q + r * cols + g * group;
      float absmax = 0.0f;
      for (int64_t j = 0; j < group; ++j) absmax = std::fmax(absmax, std::fabs(wg[j]));
      const float s = round_to_dtype(absmax / max_abs_q, scale_dtype);
      if (std::isinf(s))
        return invalid_argument(fmt::format("row {} group {}: scale {} / {} overflows {}", r, g, absmax, max_abs_q,
                                            dtype_name(scale_dtype)));
      scales[r * n_groups + g] = s;
      for (int64_t j = 0; j < group; ++j) {
        if (s == 0.0f) {
          qg[j] = 0;
          continue;
        }
        const float x = round_to_dtype(wg[j] / s, quotient_dtype);
        const float rounded = std::nearbyint(x);  // default rounding mode: to nearest, ties to even
        const float clamped = std::fmin(std::fmax(rounded, float(q_min(bits))), float(q_max(bits)));
        qg[j] = int8_t(clamped);
      }
    }
  }
  return Status::ok();
}

}  // namespace rtnq
