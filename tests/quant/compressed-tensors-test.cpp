#include "quant/compressed-tensors.h"

#include <random>

#include <gtest/gtest.h>

#include "test-util.h"

namespace rtnq {
namespace {

using test::small_llama_spec;

TEST(CompressedTensors, RandomPlansRoundTripThroughTheConfig) {
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  const QuantSpec choices[] = {{Precision::kKeep, 128}, {Precision::kInt4, 128}, {Precision::kInt4, 64},
                               {Precision::kInt8, 128}, {Precision::kInt8, kPerChannel}, {Precision::kInt4, kPerChannel}};
  for (int trial = 0; trial < 20; ++trial) {
    const ModelSpec spec = small_llama_spec(1 + int64_t(rng() % 12));
    PlanTable plan;
    plan.layers.resize(size_t(spec.num_layers));
    for (auto& l : plan.layers)
      for (auto& q : l) q = choices[rng() % 6];
    plan.lm_head = choices[rng() % 6];
    const nlohmann::json cfg = compressed_tensors_config(plan, spec);
    ASSERT_EQ(cfg["quant_method"], "compressed-tensors");
    ASSERT_EQ(cfg["format"], "pack-quantized");
    for (int64_t l = 0; l < spec.num_layers; ++l)
      for (int m = 0; m < kNumModules; ++m) {
        auto got = scheme_for_module(cfg, module_hf_prefix(l, Module(m)));
        ASSERT_TRUE(got) << got.status().to_string() << " seed " << seed;
        const QuantSpec& want = plan.at(l, Module(m));
        ASSERT_EQ(got->precision, want.precision) << module_hf_prefix(l, Module(m)) << " seed " << seed;
        if (want.precision != Precision::kKeep) {
          ASSERT_EQ(got->group_size, want.group_size) << "seed " << seed;
        }
      }
    auto lm = scheme_for_module(cfg, "lm_head");
    ASSERT_TRUE(lm);
    EXPECT_EQ(lm->precision, plan.lm_head.precision) << "seed " << seed;
    // Layer 1 must not match a target written for layer 10 or 11 (anchored alternation).
    if (spec.num_layers > 10) {
      auto l1 = scheme_for_module(cfg, module_hf_prefix(1, Module::kQ));
      ASSERT_TRUE(l1);
      EXPECT_EQ(l1->precision, plan.at(1, Module::kQ).precision);
    }
  }
}

TEST(CompressedTensors, TargetsAreAnchoredAndRegexAware) {
  EXPECT_TRUE(target_matches("re:^model\\.layers\\.(1|2)\\.mlp\\.down_proj$", "model.layers.2.mlp.down_proj"));
  EXPECT_FALSE(target_matches("re:^model\\.layers\\.(1|2)\\.mlp\\.down_proj$", "model.layers.12.mlp.down_proj"));
  EXPECT_FALSE(target_matches("re:^model\\.layers\\.(1|2)\\.mlp\\.down_proj$", "model.layers.1.mlp.down_proj_x"));
  // Python re.match anchors at the start only.
  EXPECT_TRUE(target_matches("re:.*down_proj", "model.layers.1.mlp.down_proj"));
  EXPECT_FALSE(target_matches("re:down_proj", "model.layers.1.mlp.down_proj"));
  EXPECT_TRUE(target_matches("lm_head", "lm_head"));
  EXPECT_TRUE(target_matches("Linear", "model.layers.0.self_attn.q_proj"));
}

TEST(CompressedTensors, RefusesWhatWeCannotRun) {
  nlohmann::json cfg = {{"quant_method", "compressed-tensors"},
                        {"format", "pack-quantized"},
                        {"config_groups",
                         {{"g", {{"targets", {"Linear"}},
                                 {"weights", {{"num_bits", 4}, {"type", "int"}, {"symmetric", false}, {"strategy", "group"}, {"group_size", 128}}}}}}},
                        {"ignore", {"lm_head"}}};
  auto r = scheme_for_module(cfg, "model.layers.0.self_attn.q_proj");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("symmetric"), std::string::npos);
  cfg["config_groups"]["g"]["weights"]["symmetric"] = true;
  cfg["config_groups"]["h"] = cfg["config_groups"]["g"];
  r = scheme_for_module(cfg, "model.layers.0.self_attn.q_proj");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("both"), std::string::npos);
  cfg["quant_method"] = "gptq";
  EXPECT_FALSE(scheme_for_module(cfg, "lm_head"));
}

}  // namespace
}  // namespace rtnq
