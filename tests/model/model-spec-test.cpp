// ModelSpec from/to Hugging Face config.json for the supported architectures, validation, and the
// canonical module names and shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "rtnq/model.h"

using namespace rtnq;
using json = nlohmann::json;

namespace {

// Abridged from the published config.json of each model family (values as released).
json llama31_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

json mistral_config() {
  return json::parse(R"({
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
    "vocab_size": 32000})");
}

json qwen2_config() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
}

json smollm2_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576,
    "initializer_range": 0.041666666666666664, "intermediate_size": 1536, "is_llama_config": true,
    "max_position_embeddings": 8192, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 9,
    "num_hidden_layers": 30, "num_key_value_heads": 3, "pad_token_id": 2, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
    "use_cache": true, "vocab_size": 49152})");
}

void expect_same_spec(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
  EXPECT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings, b.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
}

// Reading our own output gives the same spec back.
void expect_round_trip(const ModelSpec& s) {
  const json c = spec_to_hf_config(s);
  auto back = spec_from_hf_config(c);
  ASSERT_TRUE(back) << back.status().to_string() << "\n" << c.dump(2);
  expect_same_spec(s, *back);
}

Status parse_error(json c) {
  auto s = spec_from_hf_config(c);
  return s ? Status::ok() : s.status();
}

TEST(ModelSpec, Llama31WithLlama3RopeScaling) {
  auto s = spec_from_hf_config(llama31_config());
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_EQ(s->architecture, "LlamaForCausalLM");
  EXPECT_EQ(s->hidden_size, 4096);
  EXPECT_EQ(s->num_kv_heads, 8);
  EXPECT_EQ(s->head_dim, 128);  // 4096 / 32
  EXPECT_EQ(s->rope_theta, 500000.0);
  EXPECT_EQ(s->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(s->rope_scaling.factor, 8.0);
  EXPECT_EQ(s->rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(s->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(s->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(s->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(s->bos_token_id, 128000);
  EXPECT_FALSE(s->attention_bias);
  EXPECT_FALSE(s->tie_word_embeddings);
  EXPECT_FALSE(s->sliding_window);
  EXPECT_EQ(s->torch_dtype, DType::kBF16);
  EXPECT_EQ(s->hf_config, llama31_config());
  expect_round_trip(*s);
  // Fields we do not model survive; modelled ones are written in the current spelling.
  const json out = spec_to_hf_config(*s);
  EXPECT_EQ(out["transformers_version"], "4.43.0.dev0");
  EXPECT_EQ(out["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(out["eos_token_id"], json({128001, 128008, 128009}));
}

TEST(ModelSpec, MistralSlidingWindow) {
  auto s = spec_from_hf_config(mistral_config());
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_EQ(s->model_type, "mistral");
  EXPECT_EQ(s->sliding_window, 4096);
  EXPECT_EQ(s->eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(s->attention_bias);
  expect_round_trip(*s);

  json v3 = mistral_config();
  v3["sliding_window"] = nullptr;
  v3["head_dim"] = 128;
  auto s3 = spec_from_hf_config(v3);
  ASSERT_TRUE(s3) << s3.status().to_string();
  EXPECT_FALSE(s3->sliding_window);
  expect_round_trip(*s3);
  EXPECT_TRUE(spec_to_hf_config(*s3)["sliding_window"].is_null());
}

TEST(ModelSpec, Qwen2AlwaysHasQkvBias) {
  auto s = spec_from_hf_config(qwen2_config());
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_EQ(s->architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(s->attention_bias);  // the key is absent; Qwen2 has q/k/v biases regardless
  EXPECT_TRUE(s->tie_word_embeddings);
  EXPECT_EQ(s->head_dim, 64);  // 896 / 14
  EXPECT_FALSE(s->sliding_window) << "use_sliding_window is false";
  EXPECT_EQ(s->rope_theta, 1e6);
  expect_round_trip(*s);
  json on = qwen2_config();
  on["use_sliding_window"] = true;
  auto s2 = spec_from_hf_config(on);
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->sliding_window, 32768);
  expect_round_trip(*s2);
}

TEST(ModelSpec, SmolLM2Tied) {
  auto s = spec_from_hf_config(smollm2_config());
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_TRUE(s->tie_word_embeddings);
  EXPECT_EQ(s->head_dim, 64);
  EXPECT_EQ(s->num_heads, 9);
  EXPECT_EQ(s->num_kv_heads, 3);
  EXPECT_EQ(s->rope_theta, 100000.0);  // written as an integer in the file
  EXPECT_EQ(s->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(s->max_position_embeddings, 8192);
  expect_round_trip(*s);
  // Module shapes, hand-computed: q 9*64=576, kv 3*64=192.
  EXPECT_EQ(module_shape(*s, Module::kQ), std::make_pair(int64_t{576}, int64_t{576}));
  EXPECT_EQ(module_shape(*s, Module::kK), std::make_pair(int64_t{192}, int64_t{576}));
  EXPECT_EQ(module_shape(*s, Module::kV), std::make_pair(int64_t{192}, int64_t{576}));
  EXPECT_EQ(module_shape(*s, Module::kO), std::make_pair(int64_t{576}, int64_t{576}));
  EXPECT_EQ(module_shape(*s, Module::kGate), std::make_pair(int64_t{1536}, int64_t{576}));
  EXPECT_EQ(module_shape(*s, Module::kUp), std::make_pair(int64_t{1536}, int64_t{576}));
  EXPECT_EQ(module_shape(*s, Module::kDown), std::make_pair(int64_t{576}, int64_t{1536}));
}

TEST(ModelSpec, UnknownArchitectureIsUnsupported) {
  json c = smollm2_config();
  c["architectures"] = {"GPT2LMHeadModel"};
  Status st = parse_error(c);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("GPT2LMHeadModel"), std::string::npos) << st.message();

  c.erase("architectures");
  c["model_type"] = "gemma";
  st = parse_error(c);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("gemma"), std::string::npos) << st.message();

  // model_type alone is enough when it is known.
  c["model_type"] = "qwen2";
  auto s = spec_from_hf_config(c);
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_EQ(s->architecture, "Qwen2ForCausalLM");
}

TEST(ModelSpec, DefaultsAndAlternativeSpellings) {
  json c = json::parse(R"({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000,
    "rope_scaling": {"type": "linear", "factor": 2.0}, "dtype": "float16", "eos_token_id": 7})");
  auto s = spec_from_hf_config(c);
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_EQ(s->num_kv_heads, 4);  // default = heads
  EXPECT_EQ(s->head_dim, 64);
  EXPECT_EQ(s->torch_dtype, DType::kF16);
  EXPECT_EQ(s->rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ(s->rope_scaling.factor, 2.0);
  EXPECT_EQ(s->bos_token_id, -1);
  EXPECT_EQ(s->eos_token_ids, std::vector<int64_t>{7});
  EXPECT_EQ(s->rope_theta, 10000.0);
  expect_round_trip(*s);
  EXPECT_EQ(spec_to_hf_config(*s)["dtype"], "float16");

  c.erase("dtype");
  auto s2 = spec_from_hf_config(c);
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->torch_dtype, DType::kBF16);  // default

  // Newer transformers keep rope settings in one rope_parameters object.
  c.erase("rope_scaling");
  c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  auto s3 = spec_from_hf_config(c);
  ASSERT_TRUE(s3) << s3.status().to_string();
  EXPECT_EQ(s3->rope_theta, 250000.0);
  EXPECT_EQ(s3->rope_scaling.type, RopeScaling::Type::kNone);
  expect_round_trip(*s3);
}

TEST(ModelSpec, BadConfigsNameTheField) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    StatusCode code;
    const char* needle;
  };
  const Case cases[] = {
      {"missing hidden_size", [](json& c) { c.erase("hidden_size"); }, StatusCode::kInvalidArgument, "hidden_size"},
      {"string hidden_size", [](json& c) { c["hidden_size"] = "576"; }, StatusCode::kInvalidArgument, "hidden_size"},
      {"fractional heads", [](json& c) { c["num_attention_heads"] = 9.5; }, StatusCode::kInvalidArgument,
       "num_attention_heads"},
      {"kv not dividing heads", [](json& c) { c["num_key_value_heads"] = 4; }, StatusCode::kInvalidArgument,
       "num_key_value_heads"},
      {"heads not dividing hidden", [](json& c) { c["num_attention_heads"] = 7; }, StatusCode::kInvalidArgument,
       "hidden_size"},
      {"zero layers", [](json& c) { c["num_hidden_layers"] = 0; }, StatusCode::kInvalidArgument, "num_hidden_layers"},
      {"yarn", [](json& c) { c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; }, StatusCode::kUnsupported,
       "yarn"},
      {"llama3 without factor", [](json& c) { c["rope_scaling"] = {{"rope_type", "llama3"}}; },
       StatusCode::kInvalidArgument, "factor"},
      {"int dtype", [](json& c) { c["torch_dtype"] = "int8"; }, StatusCode::kUnsupported, "int8"},
      {"gelu", [](json& c) { c["hidden_act"] = "gelu"; }, StatusCode::kUnsupported, "gelu"},
      {"mlp bias", [](json& c) { c["mlp_bias"] = true; }, StatusCode::kUnsupported, "mlp_bias"},
      {"eos string", [](json& c) { c["eos_token_id"] = "2"; }, StatusCode::kInvalidArgument, "eos_token_id"},
      {"eos beyond vocab", [](json& c) { c["eos_token_id"] = 49152; }, StatusCode::kInvalidArgument, "eos_token_id"},
      {"arch/type mismatch", [](json& c) { c["model_type"] = "qwen2"; }, StatusCode::kInvalidArgument, "model_type"},
      {"not an object", [](json& c) { c = json::array({1}); }, StatusCode::kInvalidArgument, "object"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    json c = smollm2_config();
    k.edit(c);
    Status st = parse_error(c);
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.code(), k.code) << st.message();
    EXPECT_NE(st.message().find(k.needle), std::string::npos) << st.message();
  }
}

TEST(ModelSpec, RandomSpecsRoundTrip) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const char* archs[][2] = {{"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "mistral"},
                            {"Qwen2ForCausalLM", "qwen2"}};
  for (int iter = 0; iter < 200; ++iter) {
    ModelSpec s;
    const int a = pick(0, 2);
    s.architecture = archs[a][0];
    s.model_type = archs[a][1];
    s.num_kv_heads = pick(1, 8);
    s.num_heads = s.num_kv_heads * pick(1, 6);
    s.head_dim = 2 * pick(4, 96);
    s.hidden_size = pick(0, 1) ? s.num_heads * s.head_dim : 8 * pick(8, 1024);
    s.intermediate_size = pick(1, 20000);
    s.num_layers = pick(1, 100);
    s.vocab_size = pick(100, 300000);
    s.max_position_embeddings = pick(16, 1 << 20);
    s.rms_norm_eps = std::ldexp(1.0, -pick(5, 25));
    s.rope_theta = double(pick(100, 5000000));
    switch (pick(0, 2)) {
      case 0: break;
      case 1: s.rope_scaling = {RopeScaling::Type::kLinear, double(pick(1, 16)) / 2, 1.0, 4.0, 8192}; break;
      default: s.rope_scaling = {RopeScaling::Type::kLlama3, double(pick(2, 32)), 1.0, double(pick(2, 8)), pick(512, 65536)};
    }
    s.attention_bias = a == 2 || (a == 0 && pick(0, 1));
    s.tie_word_embeddings = pick(0, 1);
    if (a != 0 && pick(0, 1)) s.sliding_window = pick(64, 65536);
    s.bos_token_id = pick(-1, 50);
    for (int e = pick(0, 3); e > 0; --e) s.eos_token_ids.push_back(pick(0, int(s.vocab_size) - 1));
    const DType dts[] = {DType::kBF16, DType::kF16, DType::kF32};
    s.torch_dtype = dts[pick(0, 2)];
    ASSERT_TRUE(validate_spec(s).is_ok()) << validate_spec(s).message();
    SCOPED_TRACE(iter);
    expect_round_trip(s);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(ModelSpec, ValidateRejectsInconsistentSpecs) {
  auto base = spec_from_hf_config(smollm2_config());
  ASSERT_TRUE(base);
  ASSERT_TRUE(validate_spec(*base).is_ok());
  std::vector<std::pair<const char*, std::function<void(ModelSpec&)>>> edits = {
      {"head_dim", [](ModelSpec& s) { s.head_dim = 63; }},
      {"num_key_value_heads", [](ModelSpec& s) { s.num_kv_heads = 2; }},
      {"vocab_size", [](ModelSpec& s) { s.vocab_size = 0; }},
      {"rms_norm_eps", [](ModelSpec& s) { s.rms_norm_eps = 0; }},
      {"rope_theta", [](ModelSpec& s) { s.rope_theta = -1; }},
      {"sliding_window", [](ModelSpec& s) { s.sliding_window = 0; }},
      {"architecture", [](ModelSpec& s) { s.architecture = "FalconForCausalLM"; }},
      {"model_type", [](ModelSpec& s) { s.model_type = "mistral"; }},
      {"attention_bias", [](ModelSpec& s) {
         s.architecture = "Qwen2ForCausalLM";
         s.model_type = "qwen2";
         s.attention_bias = false;
       }},
      {"torch_dtype", [](ModelSpec& s) { s.torch_dtype = DType::kI32; }},
      {"low_freq_factor", [](ModelSpec& s) { s.rope_scaling = {RopeScaling::Type::kLlama3, 8.0, 4.0, 1.0, 8192}; }},
  };
  for (auto& [needle, edit] : edits) {
    ModelSpec s = *base;
    edit(s);
    Status st = validate_spec(s);
    EXPECT_FALSE(st.is_ok()) << needle;
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
  }
}

TEST(ModelSpec, ModuleNames) {
  for (int i = 0; i < kNumModules; ++i) {
    const Module m = Module(i);
    EXPECT_EQ(module_from_name(module_name(m)), m);
  }
  EXPECT_FALSE(module_from_name("qkv"));
  EXPECT_FALSE(module_from_name(""));
  EXPECT_EQ(module_hf_prefix(3, Module::kQ), "model.layers.3.self_attn.q_proj");
  EXPECT_EQ(module_hf_prefix(0, Module::kO), "model.layers.0.self_attn.o_proj");
  EXPECT_EQ(module_hf_prefix(12, Module::kGate), "model.layers.12.mlp.gate_proj");
  EXPECT_EQ(module_hf_prefix(29, Module::kDown), "model.layers.29.mlp.down_proj");
  EXPECT_EQ(source_format_name(SourceFormat::kGguf), "gguf");
}

class FakeSource : public WeightSource {
 public:
  explicit FakeSource(std::vector<TensorInfo> t) : t_(std::move(t)) {}
  const std::vector<TensorInfo>& tensors() const override { return t_; }
  Expected<TensorView> get(const std::string& name) const override { return not_found(name); }
  std::string stored_type(const std::string&) const override { return "F32"; }

 private:
  std::vector<TensorInfo> t_;
};

TEST(ModelSpec, WeightSourceFind) {
  FakeSource src({{"a.weight", DType::kF16, {2, 3}}, {"b.weight", DType::kBF16, {4}}});
  EXPECT_TRUE(src.contains("b.weight"));
  EXPECT_FALSE(src.contains("b"));
  ASSERT_NE(src.find("a.weight"), nullptr);
  EXPECT_EQ(src.find("a.weight")->shape, (Shape{2, 3}));
  EXPECT_EQ(src.find("c"), nullptr);
}

}  // namespace
