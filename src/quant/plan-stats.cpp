// Size accounting of a resolved plan: what a compressed-tensors pack-quantized checkpoint of this model
// will weigh, and the average bits per weight of the linears the plan decides on.
#include <fmt/format.h>

#include "core/check.h"
#include "rtnq/plan.h"

namespace rtnq {

namespace {

struct LinearBytes {
  uint64_t weight = 0;  // packed int32 words, or the dense weight when kept
  uint64_t scales = 0;
  uint64_t shape = 0;   // the weight_shape tensor: 2 x int64
};

// Bytes a [rows, cols] linear takes in the checkpoint under `s`.
LinearBytes linear_bytes(int64_t rows, int64_t cols, const QuantSpec& s, DType model_dtype, DType scale_dtype) {
  LinearBytes b;
  if (s.precision == Precision::kKeep) {
    b.weight = uint64_t(rows) * uint64_t(cols) * dtype_size(model_dtype);
    return b;
  }
  const int bits = precision_bits(s.precision);
  const int64_t words_per_row = (cols * bits + 31) / 32;
  const int64_t group = effective_group(s.group_size, cols);
  RTNQ_CHECK(group > 0 && cols % group == 0, "plan_stats: group {} does not divide {} (resolve_plan should have refused)",
             group, cols);
  b.weight = uint64_t(rows) * uint64_t(words_per_row) * 4;
  b.scales = uint64_t(rows) * uint64_t(cols / group) * dtype_size(scale_dtype);
  b.shape = 2 * sizeof(int64_t);
  return b;
}

}  // namespace

PlanStats plan_stats(const PlanTable& table, const ModelSpec& spec, DType model_dtype, DType scale_dtype) {
  RTNQ_CHECK(int64_t(table.layers.size()) == spec.num_layers, "plan_stats: table has {} layers, spec {}",
             table.layers.size(), spec.num_layers);
  PlanStats st;
  const uint64_t elt = dtype_size(model_dtype);
  const uint64_t hidden = uint64_t(spec.hidden_size);
  const uint64_t vocab = uint64_t(spec.vocab_size);

  double bits_sum = 0.0, scale_bits_sum = 0.0;
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    for (int mi = 0; mi < kNumModules; ++mi) {
      const Module m = Module(mi);
      const auto [rows, cols] = module_shape(spec, m);
      const int64_t n = rows * cols;
      const QuantSpec& s = table.at(l, m);
      const LinearBytes b = linear_bytes(rows, cols, s, model_dtype, scale_dtype);
      st.candidate_weights += n;
      st.original_bytes += uint64_t(n) * elt;
      st.predicted_bytes += b.weight + b.scales + b.shape;
      switch (s.precision) {
        case Precision::kKeep:
          st.weights_keep += n;
          ++st.linears_keep;
          bits_sum += double(n) * double(elt * 8);
          break;
        case Precision::kInt8:
          st.weights_int8 += n;
          ++st.linears_int8;
          bits_sum += double(n) * 8.0;
          break;
        case Precision::kInt4:
          st.weights_int4 += n;
          ++st.linears_int4;
          bits_sum += double(n) * 4.0;
          break;
      }
      scale_bits_sum += double(b.scales) * 8.0;
    }
    // Two RMSNorm weights per layer, and q/k/v biases where the architecture has them (Qwen2).
    uint64_t dense = 2 * hidden;
    if (spec.attention_bias)
      dense += uint64_t(module_shape(spec, Module::kQ).first + module_shape(spec, Module::kK).first +
                        module_shape(spec, Module::kV).first);
    st.original_bytes += dense * elt;
    st.predicted_bytes += dense * elt;
  }
  // Embeddings (always kept) and the final norm.
  st.original_bytes += (vocab * hidden + hidden) * elt;
  st.predicted_bytes += (vocab * hidden + hidden) * elt;
  // A tied lm_head is not stored at all; an untied one follows the plan.
  if (!spec.tie_word_embeddings) {
    const LinearBytes b = linear_bytes(int64_t(vocab), int64_t(hidden), table.lm_head, model_dtype, scale_dtype);
    st.original_bytes += vocab * hidden * elt;
    st.predicted_bytes += b.weight + b.scales + b.shape;
  }
  if (st.candidate_weights > 0) {
    st.avg_bits = bits_sum / double(st.candidate_weights);
    st.avg_bits_with_scales = (bits_sum + scale_bits_sum) / double(st.candidate_weights);
  }
  return st;
}

nlohmann::json plan_stats_to_json(const PlanStats& s) {
  return {{"candidate_weights", s.candidate_weights},
          {"weights", {{"keep", s.weights_keep}, {"int8", s.weights_int8}, {"int4", s.weights_int4}}},
          {"linears", {{"keep", s.linears_keep}, {"int8", s.linears_int8}, {"int4", s.linears_int4}}},
          {"avg_bits", s.avg_bits},
          {"avg_bits_with_scales", s.avg_bits_with_scales},
          {"original_bytes", s.original_bytes},
          {"predicted_bytes", s.predicted_bytes},
          {"compression_ratio", s.ratio()}};
}

}  // namespace rtnq
