// Hugging Face folder loader: tiny random checkpoints written with our safetensors writer (single
// file, two shards + index, compressed-tensors packed projections), loaded back tensor by tensor, and
// the broken folders a user can hand us, each of which must give a Status naming what is wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "core/atomic-output.h"
#include "io/safetensors-writer.h"
#include "model/loaders.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace rtnq;
using json = nlohmann::json;

namespace {

struct Tensor {
  TensorInfo info;
  std::vector<uint8_t> bytes;
};

class HfLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = std::random_device{}();
    rng_.seed(seed_);
  }

  ModelSpec tiny_spec(const std::string& arch) {
    ModelSpec s;
    s.architecture = arch;
    s.model_type = arch == "Qwen2ForCausalLM" ? "qwen2" : arch == "MistralForCausalLM" ? "mistral" : "llama";
    s.hidden_size = 64;
    s.intermediate_size = 96;
    s.num_layers = 2;
    s.num_heads = 4;
    s.num_kv_heads = 2;
    s.head_dim = 16;
    s.vocab_size = 50;
    s.attention_bias = s.model_type == "qwen2";
    s.tie_word_embeddings = s.model_type == "qwen2";
    s.bos_token_id = 1;
    s.eos_token_ids = {2};
    return s;
  }

  Tensor random_tensor(const std::string& name, Shape shape, std::optional<DType> dtype = {}) {
    static const DType kFloat[] = {DType::kF32, DType::kF16, DType::kBF16};
    Tensor t;
    t.info = {name, dtype.value_or(kFloat[rng_() % 3]), std::move(shape)};
    t.bytes.resize(t.info.nbytes());
    for (auto& b : t.bytes) b = uint8_t(rng_());
    return t;
  }

  // Every tensor a checkpoint of `s` must hold, with random contents.
  std::vector<Tensor> model_tensors(const ModelSpec& s) {
    std::vector<Tensor> out;
    out.push_back(random_tensor("model.embed_tokens.weight", {s.vocab_size, s.hidden_size}));
    for (int64_t l = 0; l < s.num_layers; ++l) {
      out.push_back(random_tensor(fmt::format("model.layers.{}.input_layernorm.weight", l), {s.hidden_size}));
      for (int m = 0; m < kNumModules; ++m) {
        const auto [o, i] = module_shape(s, Module(m));
        const std::string p = module_hf_prefix(l, Module(m));
        out.push_back(random_tensor(p + ".weight", {o, i}));
        if (s.attention_bias && m < 3) out.push_back(random_tensor(p + ".bias", {o}));
      }
      out.push_back(random_tensor(fmt::format("model.layers.{}.post_attention_layernorm.weight", l), {s.hidden_size}));
    }
    out.push_back(random_tensor("model.norm.weight", {s.hidden_size}));
    if (!s.tie_word_embeddings) out.push_back(random_tensor("lm_head.weight", {s.vocab_size, s.hidden_size}));
    return out;
  }

  static void write_shard(const fs::path& p, const std::vector<const Tensor*>& ts) {
    std::vector<TensorInfo> infos;
    for (const Tensor* t : ts) infos.push_back(t->info);
    auto w = SafetensorsWriter::open(p, infos, {{"format", "pt"}});
    ASSERT_TRUE(w) << w.status().to_string();
    for (const Tensor* t : ts) ASSERT_TRUE(w->write_tensor(t->info.name, t->bytes.data(), t->bytes.size()).is_ok());
    ASSERT_TRUE(w->close().is_ok());
  }

  // A folder with config.json, side files, and the tensors in `n_shards` files (1: model.safetensors).
  fs::path write_folder(const std::string& name, const ModelSpec& s, const std::vector<Tensor>& ts, int n_shards,
                        const json& extra_config = json::object()) {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    json config = spec_to_hf_config(s);
    config.update(extra_config);
    EXPECT_TRUE(write_text_file(dir / "config.json", config.dump(2)).is_ok());
    EXPECT_TRUE(write_text_file(dir / "tokenizer.json", R"({"model": {"type": "BPE"}})").is_ok());
    EXPECT_TRUE(write_text_file(dir / "tokenizer_config.json", R"({"add_bos_token": false, "chat_template": "{{x}}"})").is_ok());
    EXPECT_TRUE(write_text_file(dir / "generation_config.json", R"({"temperature": 0.6})").is_ok());
    if (n_shards == 1) {
      std::vector<const Tensor*> all;
      for (const auto& t : ts) all.push_back(&t);
      write_shard(dir / "model.safetensors", all);
      return dir;
    }
    json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
    std::vector<std::vector<const Tensor*>> parts(static_cast<size_t>(n_shards));
    for (size_t i = 0; i < ts.size(); ++i) {
      // Contiguous split, as HF's sharder does, so each shard holds whole layers.
      const size_t shard = i * size_t(n_shards) / ts.size();
      parts[shard].push_back(&ts[i]);
      index["weight_map"][ts[i].info.name] = fmt::format("model-{:05d}-of-{:05d}.safetensors", shard + 1, n_shards);
    }
    for (int k = 0; k < n_shards; ++k)
      write_shard(dir / fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, n_shards), parts[size_t(k)]);
    EXPECT_TRUE(write_text_file(dir / "model.safetensors.index.json", index.dump(2)).is_ok());
    return dir;
  }

  // Every written tensor is served, zero-copy and byte-exact, with its dtype and shape.
  void expect_serves(const LoadedModel& m, const std::vector<Tensor>& ts) {
    ASSERT_TRUE(m.weights);
    EXPECT_EQ(m.weights->tensors().size(), ts.size());
    for (const Tensor& t : ts) {
      auto v = m.weights->get(t.info.name);
      ASSERT_TRUE(v) << v.status().to_string();
      EXPECT_EQ(v->info.dtype, t.info.dtype) << t.info.name;
      EXPECT_EQ(v->info.shape, t.info.shape) << t.info.name;
      ASSERT_EQ(v->nbytes(), t.bytes.size()) << t.info.name;
      EXPECT_EQ(std::memcmp(v->data, t.bytes.data(), t.bytes.size()), 0) << t.info.name;
      EXPECT_EQ(m.weights->stored_type(t.info.name), dtype_name(t.info.dtype));
      EXPECT_TRUE(m.weights->contains(t.info.name));
    }
    EXPECT_FALSE(m.weights->get("no.such.tensor"));
  }

  static std::string detail(const LoadedModel& m, const std::string& key) {
    for (const auto& [k, v] : m.details)
      if (k == key) return v;
    return "";
  }

  static void expect_error(const fs::path& dir, StatusCode code, std::vector<std::string> needles) {
    auto m = load_hf_folder(dir);
    ASSERT_FALSE(m) << "loaded a broken folder " << dir;
    const std::string msg = m.status().message();
    std::printf("  message: %s\n", msg.c_str());  // the text a user would see, for review
    EXPECT_EQ(m.status().code(), code) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }

  uint32_t seed_ = 0;
  std::mt19937_64 rng_;
  rtnq::test::TempDir tmp_{"rtnq-hf-test"};
  const fs::path root_ = tmp_.path();
};

#define TRACE_SEED() SCOPED_TRACE(::testing::Message() << "seed " << seed_)

TEST_F(HfLoaderTest, SingleFileLlama) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("LlamaForCausalLM");
  const auto ts = model_tensors(s);
  const fs::path dir = write_folder("llama", s, ts, 1);
  auto m = load_hf_folder(dir);
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->format, SourceFormat::kHfFolder);
  EXPECT_EQ(m->spec.hidden_size, 64);
  EXPECT_EQ(m->spec.num_kv_heads, 2);
  EXPECT_FALSE(m->spec.tie_word_embeddings);
  EXPECT_FALSE(m->quantization_config);
  expect_serves(*m, ts);
  EXPECT_EQ(detail(*m, "shards"), "1");
  EXPECT_EQ(detail(*m, "total bytes").substr(0, std::to_string(fs::file_size(dir / "model.safetensors")).size()),
            std::to_string(fs::file_size(dir / "model.safetensors")));
  EXPECT_EQ(m->tokenizer.kind, TokenizerData::Kind::kHfJson);
  EXPECT_EQ(m->tokenizer.hf_tokenizer_json, dir / "tokenizer.json");
  EXPECT_FALSE(m->tokenizer.add_bos);
  EXPECT_EQ(m->tokenizer.chat_template, "{{x}}");
  EXPECT_EQ(m->tokenizer.bos_id, 1);
  EXPECT_EQ(m->tokenizer.eos_id, 2);
  std::vector<fs::path> want = {dir / "tokenizer.json", dir / "tokenizer_config.json", dir / "generation_config.json"};
  EXPECT_EQ(m->side_files, want);
}

TEST_F(HfLoaderTest, TwoShardsQwen2WithBiasesAndTiedEmbeddings) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("Qwen2ForCausalLM");
  const auto ts = model_tensors(s);
  const fs::path dir = write_folder("qwen", s, ts, 2);
  auto m = load_hf_folder(dir);
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_TRUE(m->spec.attention_bias);
  EXPECT_TRUE(m->spec.tie_word_embeddings);
  expect_serves(*m, ts);
  EXPECT_EQ(detail(*m, "shards"), "2");
  const uint64_t total = fs::file_size(dir / "model-00001-of-00002.safetensors") +
                         fs::file_size(dir / "model-00002-of-00002.safetensors");
  EXPECT_EQ(detail(*m, "total bytes").rfind(std::to_string(total) + " ", 0), 0u) << detail(*m, "total bytes");
}

TEST_F(HfLoaderTest, MissingTensorNamesItAndItsShape) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("LlamaForCausalLM");
  auto ts = model_tensors(s);
  const size_t victim = 1 + rng_() % (ts.size() - 1);
  const Tensor removed = ts[victim];
  ts.erase(ts.begin() + long(victim));
  const fs::path dir = write_folder("missing", s, ts, 1);
  expect_error(dir, StatusCode::kNotFound, {"'" + removed.info.name + "'", "missing", shape_to_string(removed.info.shape)});

  // A Qwen2 checkpoint without its q bias.
  const ModelSpec q = tiny_spec("Qwen2ForCausalLM");
  auto qt = model_tensors(q);
  std::erase_if(qt, [](const Tensor& t) { return t.info.name == "model.layers.1.self_attn.q_proj.bias"; });
  expect_error(write_folder("nobias", q, qt, 1), StatusCode::kNotFound, {"model.layers.1.self_attn.q_proj.bias", "[64]"});
}

TEST_F(HfLoaderTest, WrongShapeNamesExpectedAndActual) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("LlamaForCausalLM");
  auto ts = model_tensors(s);
  for (auto& t : ts)
    if (t.info.name == "model.layers.1.self_attn.k_proj.weight") t = random_tensor(t.info.name, {64, 64});
  expect_error(write_folder("shape", s, ts, 2), StatusCode::kCorrupt,
               {"model.layers.1.self_attn.k_proj.weight", "[64, 64]", "expected [32, 64]"});

  auto ts2 = model_tensors(s);
  for (auto& t : ts2)
    if (t.info.name == "model.norm.weight") t = random_tensor(t.info.name, {64}, DType::kI32);
  expect_error(write_folder("dtype", s, ts2, 1), StatusCode::kCorrupt, {"model.norm.weight", "I32", "float"});
}

TEST_F(HfLoaderTest, IndexErrors) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("LlamaForCausalLM");
  const auto ts = model_tensors(s);

  const fs::path gone = write_folder("gone", s, ts, 2);
  fs::remove(gone / "model-00002-of-00002.safetensors");
  expect_error(gone, StatusCode::kNotFound, {"model-00002-of-00002.safetensors", "does not exist"});

  // The index claims a tensor lives in a shard that does not hold it.
  const fs::path lying = write_folder("lying", s, ts, 2);
  {
    std::ifstream in(lying / "model.safetensors.index.json");
    json index = json::parse(in);
    index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
    ASSERT_TRUE(write_text_file(lying / "model.safetensors.index.json", index.dump()).is_ok());
  }
  expect_error(lying, StatusCode::kCorrupt, {"model.norm.weight", "model-00001-of-00002.safetensors", "no such tensor"});

  // The same tensor stored in both shards.
  const fs::path dup = root_ / "dup";
  fs::create_directories(dup);
  ASSERT_TRUE(write_text_file(dup / "config.json", spec_to_hf_config(s).dump()).is_ok());
  std::vector<const Tensor*> a, b;
  for (size_t i = 0; i < ts.size(); ++i) (i % 2 ? b : a).push_back(&ts[i]);
  b.push_back(&ts[0]);
  write_shard(dup / "a.safetensors", a);
  write_shard(dup / "b.safetensors", b);
  json index = {{"weight_map", json::object()}};
  for (const Tensor* t : a) index["weight_map"][t->info.name] = "a.safetensors";
  for (const Tensor* t : b) index["weight_map"][t->info.name] = "b.safetensors";
  ASSERT_TRUE(write_text_file(dup / "model.safetensors.index.json", index.dump()).is_ok());
  expect_error(dup, StatusCode::kCorrupt, {ts[0].info.name, "twice"});

  // Shard names must stay inside the folder.
  index["weight_map"][ts[0].info.name] = "../b.safetensors";
  ASSERT_TRUE(write_text_file(dup / "model.safetensors.index.json", index.dump()).is_ok());
  expect_error(dup, StatusCode::kCorrupt, {"../b.safetensors", "not a file name"});

  ASSERT_TRUE(write_text_file(dup / "model.safetensors.index.json", R"({"weight_map": [1]})").is_ok());
  expect_error(dup, StatusCode::kCorrupt, {"weight_map"});
}

TEST_F(HfLoaderTest, FolderErrors) {
  expect_error(root_ / "nothing-here", StatusCode::kNotFound, {"nothing-here"});
  const fs::path empty = root_ / "empty";
  fs::create_directories(empty);
  expect_error(empty, StatusCode::kNotFound, {"config.json"});
  ASSERT_TRUE(write_text_file(empty / "config.json", "{\"hidden_size\": ").is_ok());
  expect_error(empty, StatusCode::kCorrupt, {"config.json", "not valid JSON"});
  json c = spec_to_hf_config(tiny_spec("LlamaForCausalLM"));
  c["architectures"] = {"FalconForCausalLM"};
  ASSERT_TRUE(write_text_file(empty / "config.json", c.dump()).is_ok());
  expect_error(empty, StatusCode::kUnsupported, {"config.json", "FalconForCausalLM"});
  ASSERT_TRUE(write_text_file(empty / "config.json", spec_to_hf_config(tiny_spec("LlamaForCausalLM")).dump()).is_ok());
  expect_error(empty, StatusCode::kNotFound, {"model.safetensors"});
}

// compressed-tensors pack-quantized projections: 4-bit group 32 and 8-bit per-channel, side by side
// with kept (dense) projections, as selective quantization writes them.
class HfLoaderPackedTest : public HfLoaderTest {
 protected:
  static json quant_config() {
    return json::parse(R"({"quantization_config": {
      "quant_method": "compressed-tensors", "format": "pack-quantized",
      "config_groups": {
        "group_0": {"targets": ["re:.*q_proj$"], "weights": {"num_bits": 4, "type": "int", "symmetric": true,
                    "strategy": "group", "group_size": 32}},
        "group_1": {"targets": ["re:.*down_proj$"], "weights": {"num_bits": 8, "type": "int", "symmetric": true,
                    "strategy": "channel", "group_size": null}}},
      "ignore": ["lm_head"]}})");
  }
  // Replace `prefix.weight` [out, in] by its packed triple.
  void pack(std::vector<Tensor>& ts, const std::string& prefix, int bits, int64_t group, DType shape_dtype = DType::kI64,
            std::optional<std::pair<int64_t, int64_t>> shape_override = {}) {
    auto it = std::find_if(ts.begin(), ts.end(), [&](const Tensor& t) { return t.info.name == prefix + ".weight"; });
    ASSERT_NE(it, ts.end());
    const int64_t out = it->info.shape[0], in = it->info.shape[1];
    ts.erase(it);
    ts.push_back(random_tensor(prefix + ".weight_packed", {out, in * bits / 32}, DType::kI32));
    ts.push_back(random_tensor(prefix + ".weight_scale", {out, group > 0 ? in / group : 1}, DType::kBF16));
    Tensor shape;
    shape.info = {prefix + ".weight_shape", shape_dtype, {2}};
    const auto [o, i] = shape_override.value_or(std::make_pair(out, in));
    if (shape_dtype == DType::kI64) {
      int64_t d[2] = {o, i};
      shape.bytes.assign(reinterpret_cast<uint8_t*>(d), reinterpret_cast<uint8_t*>(d) + 16);
    } else {
      int32_t d[2] = {int32_t(o), int32_t(i)};
      shape.bytes.assign(reinterpret_cast<uint8_t*>(d), reinterpret_cast<uint8_t*>(d) + 8);
    }
    ts.push_back(std::move(shape));
  }
};

TEST_F(HfLoaderPackedTest, AcceptsPackQuantizedProjections) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("LlamaForCausalLM");
  auto ts = model_tensors(s);
  pack(ts, "model.layers.0.self_attn.q_proj", 4, 32);
  pack(ts, "model.layers.1.self_attn.q_proj", 4, 32, DType::kI32);
  pack(ts, "model.layers.0.mlp.down_proj", 8, -1);
  const fs::path dir = write_folder("packed", s, ts, 2, quant_config());
  auto m = load_hf_folder(dir);
  ASSERT_TRUE(m) << m.status().to_string();
  ASSERT_TRUE(m->quantization_config);
  EXPECT_EQ((*m->quantization_config)["quant_method"], "compressed-tensors");
  expect_serves(*m, ts);
  auto packed = m->weights->get("model.layers.0.self_attn.q_proj.weight_packed");
  ASSERT_TRUE(packed);
  EXPECT_EQ(packed->info.shape, (Shape{64, 8}));
  EXPECT_FALSE(m->weights->contains("model.layers.0.self_attn.q_proj.weight"));
}

// A plan that keeps every module writes a quantization_config without groups: still loadable.
TEST_F(HfLoaderPackedTest, AllKeptConfigHasNoGroups) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("MistralForCausalLM");
  const auto ts = model_tensors(s);
  json qc = quant_config();
  qc["quantization_config"]["config_groups"] = json::object();
  auto m = load_hf_folder(write_folder("kept", s, ts, 1, qc));
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_TRUE(m->quantization_config);
  expect_serves(*m, ts);
}

TEST_F(HfLoaderPackedTest, RejectsInconsistentPackedTensors) {
  TRACE_SEED();
  const ModelSpec s = tiny_spec("LlamaForCausalLM");
  {
    auto ts = model_tensors(s);
    pack(ts, "model.layers.0.self_attn.q_proj", 4, 32, DType::kI64, std::make_pair(int64_t{64}, int64_t{63}));
    expect_error(write_folder("badshape", s, ts, 1, quant_config()), StatusCode::kCorrupt,
                 {"model.layers.0.self_attn.q_proj", "weight_shape holds [64, 63]", "[64, 64]"});
  }
  {
    auto ts = model_tensors(s);
    pack(ts, "model.layers.0.self_attn.q_proj", 4, 32);
    expect_error(write_folder("noconfig", s, ts, 1), StatusCode::kCorrupt,
                 {"model.layers.0.self_attn.q_proj.weight_packed", "quantization_config"});
  }
  {
    auto ts = model_tensors(s);
    pack(ts, "model.layers.1.mlp.up_proj", 4, 16);  // no config group declares 4-bit / 16
    expect_error(write_folder("scheme", s, ts, 1, quant_config()), StatusCode::kCorrupt,
                 {"model.layers.1.mlp.up_proj", "4-bit with group size 16"});
  }
  {
    auto ts = model_tensors(s);
    pack(ts, "model.layers.1.self_attn.q_proj", 4, 32);
    std::erase_if(ts, [](const Tensor& t) { return t.info.name == "model.layers.1.self_attn.q_proj.weight_scale"; });
    expect_error(write_folder("noscale", s, ts, 1, quant_config()), StatusCode::kNotFound,
                 {"model.layers.1.self_attn.q_proj.weight_scale", "missing"});
  }
  {
    auto ts = model_tensors(s);
    json gptq = {{"quantization_config", {{"quant_method", "gptq"}, {"bits", 4}}}};
    expect_error(write_folder("gptq", s, ts, 1, gptq), StatusCode::kUnsupported, {"gptq"});
  }
}

}  // namespace
