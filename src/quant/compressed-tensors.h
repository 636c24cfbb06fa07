// The compressed-tensors `quantization_config` that describes a resolved plan, and the reverse:
// which scheme a checkpoint's config assigns to a module. vLLM and transformers read this block.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "rtnq/model.h"
#include "rtnq/plan.h"

namespace rtnq {

// One config group per distinct (bits, group size) in `plan`, each targeting exactly its modules
// with anchored regexes ("re:^model\.layers\.(0|1)\.self_attn\.q_proj$"), so groups are disjoint by
// construction; every linear left at original precision (and lm_head unless quantized) is in `ignore`.
nlohmann::json compressed_tensors_config(const PlanTable& plan, const ModelSpec& spec);

// The scheme `config` assigns to `module_path` ("model.layers.3.mlp.down_proj"): kKeep when ignored
// or targeted by no group. Errors on configs outside what we run: asymmetric, non-int, activation
// quantization, formats other than pack-quantized, or a module matched by two groups.
Expected<QuantSpec> scheme_for_module(const nlohmann::json& config, const std::string& module_path);

// Python-`re.match` style test used for compressed-tensors targets: "re:PATTERN" matches from the
// start of `name`; plain targets match the whole name or a class name we map ("Linear").
bool target_matches(const std::string& target, const std::string& name);

}  // namespace rtnq
