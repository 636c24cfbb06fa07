// `rtnq quantize`: stream a model's tensors one at a time from their source, RTN-quantize the linears
// the plan selects, and write a sharded compressed-tensors checkpoint atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rtnq/model.h"
#include "rtnq/plan.h"

namespace rtnq {

struct QuantizeOptions {
  std::filesystem::path output;
  bool force = false;                         // replace an existing output
  int threads = 0;                            // 0: all cores
  uint64_t max_shard_bytes = 5'000'000'000;   // Hugging Face's default shard size (5 GB)
  bool progress = true;
};

// What happened to one weight matrix.
struct ModuleReport {
  int64_t layer = -1;         // -1 for lm_head
  std::string module;         // "q" ... "down", "lm_head"
  QuantSpec spec;
  int64_t weights = 0;
  uint64_t bytes_in = 0;      // in the model's original dtype
  uint64_t bytes_out = 0;     // packed + scales + shape, or the kept tensor
  double rel_rms_error = 0;   // ||W - dequant(Q)|| / ||W|| (0 when kept)
  double max_abs_error = 0;
};

struct QuantizeReport {
  std::filesystem::path source, output;
  std::string source_format;
  std::vector<ModuleReport> modules;
  int64_t tensors_written = 0;
  int shards = 0;
  uint64_t input_bytes = 0;   // source tensors in the model's original dtype (GGUF: as the HF checkpoint would be)
  uint64_t output_bytes = 0;  // bytes of tensor data written
  double seconds = 0;
  int threads = 1;
  nlohmann::json to_json() const;
};

// The tensors the output checkpoint will hold, in order, with their sizes: decided before any data
// is read so shard headers can be written first.
struct OutputTensor {
  TensorInfo info;
  std::string source;          // source tensor it comes from
  enum class Kind { kCopy, kPacked, kScale, kShape } kind = Kind::kCopy;
  int64_t layer = -1;          // quantized modules only
  std::string module;
  QuantSpec spec;
};
Expected<std::vector<OutputTensor>> plan_output_tensors(const LoadedModel& model, const PlanTable& plan);

Expected<QuantizeReport> quantize_model(const LoadedModel& model, const PlanTable& plan, const QuantizeOptions& opts);

// Human-readable summary tables (per module kind, per layer) of a finished run.
std::string format_quantize_summary(const QuantizeReport& report);

}  // namespace rtnq
