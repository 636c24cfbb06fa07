// Selective precision: which (layer, module) is kept, INT8 or INT4, and with what group size.
// Rules (from CLI flags or a JSON/TOML file) are resolved against a ModelSpec into a PlanTable.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "rtnq/model.h"
#include "rtnq/quant.h"

namespace rtnq {

// The resolved decision for every quantizable linear, plus the non-layer tensors.
struct PlanTable {
  std::vector<std::array<QuantSpec, kNumModules>> layers;  // [num_layers][module]
  QuantSpec lm_head;                                       // default: kKeep
  QuantSpec embed_tokens;                                  // default: kKeep (never packed; reserved)
  const QuantSpec& at(int64_t layer, Module m) const { return layers[size_t(layer)][size_t(m)]; }
};

}  // namespace rtnq
