// End to end: quantize real models with the pipeline, read the checkpoint back through the loader,
// and check every packed integer and scale against the RTN reference run on the source weights.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "core/atomic-output.h"
#include "io/safetensors-writer.h"
#include "quant/compressed-tensors.h"
#include "quant/pack.h"
#include "quant/quantize-pipeline.h"
#include "rtnq/model.h"
#include "rtnq/plan.h"
#include "rtnq/quant.h"
#include "test-util.h"

namespace fs = std::filesystem;

namespace rtnq {
namespace {

using test::models_dir;

// Scratch folders named after this test.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("rtnq-e2e") {}
};

PlanTable uniform_plan(const ModelSpec& spec, QuantSpec all) {
  PlanTable t;
  t.layers.assign(size_t(spec.num_layers), {});
  for (auto& l : t.layers) l.fill(all);
  return t;
}

// Reads back `out` and checks it against `src` quantized by the reference, module by module.
// `max_layers` bounds the work in slow (sanitizer) builds.
void check_readback(const LoadedModel& src, const PlanTable& plan, const fs::path& out, int64_t max_layers) {
  auto back = load_model(out);
  ASSERT_TRUE(back) << back.status().to_string();
  ASSERT_TRUE(back->quantization_config.has_value());
  EXPECT_EQ(back->spec.num_layers, src.spec.num_layers);
  EXPECT_EQ(back->spec.hidden_size, src.spec.hidden_size);
  EXPECT_EQ(back->spec.vocab_size, src.spec.vocab_size);
  const DType model_dtype = src.spec.torch_dtype;
  for (int64_t l = 0; l < std::min(max_layers, src.spec.num_layers); ++l) {
    for (int mi = 0; mi < kNumModules; ++mi) {
      const Module m = Module(mi);
      const std::string prefix = module_hf_prefix(l, m);
      const QuantSpec want = plan.at(l, m);
      auto got = scheme_for_module(*back->quantization_config, prefix);
      ASSERT_TRUE(got) << got.status().to_string();
      ASSERT_EQ(got->precision, want.precision) << prefix;
      auto w = src.weights->get(prefix + ".weight");
      ASSERT_TRUE(w) << w.status().to_string();
      // Reference: the source weight as the model dtype holds it, quantized by rtn_quantize_ref.
      TensorView wf = to_f32(*w);
      std::vector<float> wv(wf.as<float>(), wf.as<float>() + wf.numel());
      for (auto& x : wv) x = round_to_dtype(x, model_dtype);
      if (want.precision == Precision::kKeep) {
        auto kept = back->weights->get(prefix + ".weight");
        ASSERT_TRUE(kept) << prefix;
        TensorView kf = to_f32(*kept);
        for (int64_t i = 0; i < kf.numel(); ++i) ASSERT_EQ(kf.as<float>()[i], wv[size_t(i)]) << prefix << " @" << i;
        continue;
      }
      ASSERT_EQ(got->group_size, want.group_size) << prefix;
      const int64_t rows = w->info.shape[0], cols = w->info.shape[1];
      const int bits = precision_bits(want.precision);
      const int64_t g = effective_group(want.group_size, cols);
      std::vector<int8_t> qref(size_t(rows * cols));
      std::vector<float> sref(size_t(rows * (cols / g)));
      ASSERT_TRUE(rtn_quantize_ref(wv.data(), rows, cols, bits, want.group_size, model_dtype, qref.data(), sref.data(),
                                   rtn_quotient_dtype(model_dtype, model_dtype)).is_ok());
      auto packed = back->weights->get(prefix + ".weight_packed");
      auto scale = back->weights->get(prefix + ".weight_scale");
      auto shape = back->weights->get(prefix + ".weight_shape");
      ASSERT_TRUE(packed && scale && shape) << prefix;
      ASSERT_EQ(packed->info.dtype, DType::kI32);
      ASSERT_EQ(packed->info.shape, (Shape{rows, cols * bits / 32}));
      ASSERT_EQ(scale->info.shape, (Shape{rows, cols / g}));
      ASSERT_EQ(scale->info.dtype, model_dtype);
      ASSERT_EQ(shape->as<int64_t>()[0], rows);
      ASSERT_EQ(shape->as<int64_t>()[1], cols);
      std::vector<int8_t> q(size_t(rows * cols));
      unpack_int32(packed->as<int32_t>(), rows, cols, bits, q.data());
      for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(int(q[i]), int(qref[i])) << prefix << " q @" << i;
      TensorView sf = to_f32(*scale);
      for (size_t i = 0; i < sref.size(); ++i) ASSERT_EQ(sf.as<float>()[i], sref[i]) << prefix << " scale @" << i;
    }
  }
  EXPECT_TRUE(fs::exists(out / "config.json"));
}

TEST(QuantizeE2E, Stories260KWritesAndReadsBack) {
  const fs::path bin = models_dir() / "stories260K" / "stories260K.bin";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " missing: run scripts/fetch-models.sh";
  auto src = load_model(bin);
  ASSERT_TRUE(src) << src.status().to_string();
  // dim 64, hidden 172: int4 with group 64 for everything that reads 64 inputs; down (172 inputs)
  // cannot be packed at 4 bits (172 % 8 != 0), so it goes to int8 per channel.
  PlanTable plan = uniform_plan(src->spec, {Precision::kInt4, 64});
  for (auto& l : plan.layers) l[size_t(Module::kDown)] = {Precision::kInt8, kPerChannel};
  plan.layers[1].fill({Precision::kKeep, 128});  // one layer kept whole: exercises the ignore list
  TempDir tmp;
  QuantizeOptions opts;
  opts.output = tmp.path() / "new" / "parents" / "out";  // missing parents are created
  opts.progress = false;
  opts.threads = 2;
  opts.max_shard_bytes = 200'000;  // force several shards + index on this 1 MB model
  auto rep = quantize_model(*src, plan, opts);
  ASSERT_TRUE(rep) << rep.status().to_string();
  EXPECT_GT(rep->shards, 1);
  EXPECT_TRUE(fs::exists(opts.output / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(opts.output / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(opts.output.parent_path() / ("out.rtnq-tmp-" + std::to_string(::getpid()))));
  for (const auto& m : rep->modules)
    if (m.spec.precision != Precision::kKeep) {
      EXPECT_GT(m.rel_rms_error, 0.0) << m.module;
      EXPECT_LT(m.rel_rms_error, m.spec.precision == Precision::kInt8 ? 0.02 : 0.2) << m.module;
    }
  check_readback(*src, plan, opts.output, src->spec.num_layers);

  // An existing output is never overwritten without force, and stays intact.
  auto again = quantize_model(*src, plan, opts);
  ASSERT_FALSE(again);
  EXPECT_NE(again.status().message().find("--force"), std::string::npos);
  EXPECT_TRUE(fs::exists(opts.output / "config.json"));
  opts.force = true;
  ASSERT_TRUE(quantize_model(*src, plan, opts));
}

TEST(QuantizeE2E, FailedRunLeavesNothingBehind) {
  const fs::path bin = models_dir() / "stories260K" / "stories260K.bin";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " missing";
  auto src = load_model(bin);
  ASSERT_TRUE(src);
  // int4 on down_proj (172 inputs) cannot be packed: the run must fail before leaving any output.
  PlanTable plan = uniform_plan(src->spec, {Precision::kInt4, kPerChannel});
  TempDir tmp;
  QuantizeOptions opts;
  opts.output = tmp.path() / "out";
  opts.progress = false;
  auto rep = quantize_model(*src, plan, opts);
  ASSERT_FALSE(rep);
  EXPECT_NE(rep.status().message().find("down_proj"), std::string::npos) << rep.status().message();
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "left behind: " << fs::directory_iterator(tmp.path())->path();
}

// A tiny random BF16 Llama folder with a NaN planted in layer `nan_layer`'s down_proj (-1: none).
fs::path write_tiny_hf(const fs::path& dir, int64_t nan_layer) {
  ModelSpec spec;
  spec.hidden_size = 64;
  spec.intermediate_size = 128;
  spec.num_layers = 3;
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.head_dim = 16;
  spec.vocab_size = 100;
  spec.torch_dtype = DType::kBF16;
  std::vector<TensorInfo> infos;
  auto add = [&](std::string n, Shape sh) { infos.push_back({std::move(n), DType::kBF16, std::move(sh)}); };
  add("model.embed_tokens.weight", {spec.vocab_size, spec.hidden_size});
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    add("model.layers." + std::to_string(l) + ".input_layernorm.weight", {spec.hidden_size});
    add("model.layers." + std::to_string(l) + ".post_attention_layernorm.weight", {spec.hidden_size});
    for (int m = 0; m < kNumModules; ++m) {
      auto [o, i] = module_shape(spec, Module(m));
      add(module_hf_prefix(l, Module(m)) + ".weight", {o, i});
    }
  }
  add("model.norm.weight", {spec.hidden_size});
  add("lm_head.weight", {spec.vocab_size, spec.hidden_size});
  fs::create_directories(dir);
  auto w = SafetensorsWriter::open(dir / "model.safetensors", infos, {});
  EXPECT_TRUE(w) << w.status().to_string();
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0.f, 0.05f);
  for (const auto& t : infos) {
    std::vector<uint16_t> buf(size_t(t.numel()));
    for (auto& x : buf) x = f32_to_bf16(nd(rng));
    if (nan_layer >= 0 && t.name == module_hf_prefix(nan_layer, Module::kDown) + ".weight") buf[77] = 0x7fc0;
    EXPECT_TRUE(w->write_tensor(t.name, buf.data(), buf.size() * 2).is_ok());
  }
  EXPECT_TRUE(w->close().is_ok());
  EXPECT_TRUE(write_text_file(dir / "config.json", spec_to_hf_config(spec).dump()).is_ok());
  return dir;
}

TEST(QuantizeE2E, FailureMidWriteLeavesNoCheckpointAndNamesTheTensor) {
  TempDir tmp;
  const fs::path src_dir = write_tiny_hf(tmp.path() / "src", /*nan_layer=*/2);
  auto src = load_model(src_dir);
  ASSERT_TRUE(src) << src.status().to_string();
  PlanTable plan = uniform_plan(src->spec, {Precision::kInt4, 32});
  QuantizeOptions opts;
  opts.output = tmp.path() / "out";
  opts.progress = false;
  opts.max_shard_bytes = 20'000;  // several shards are complete on disk before layer 2 fails
  auto rep = quantize_model(*src, plan, opts);
  ASSERT_FALSE(rep);
  const std::string msg = rep.status().message();
  EXPECT_NE(msg.find("model.layers.2.mlp.down_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("77"), std::string::npos) << msg;  // the flat index of the NaN
  for (const auto& e : fs::directory_iterator(tmp.path())) EXPECT_EQ(e.path().filename(), "src") << e.path();

  // The same model without the NaN quantizes, and a second run over an existing output with --force
  // replaces it whole.
  const fs::path clean = write_tiny_hf(tmp.path() / "clean", -1);
  auto ok_src = load_model(clean);
  ASSERT_TRUE(ok_src);
  ASSERT_TRUE(quantize_model(*ok_src, plan, opts));
  opts.force = true;
  plan.layers[0].fill({Precision::kInt8, 64});
  ASSERT_TRUE(quantize_model(*ok_src, plan, opts));
  auto back = load_model(opts.output);
  ASSERT_TRUE(back) << back.status().to_string();
  auto s = scheme_for_module(*back->quantization_config, module_hf_prefix(0, Module::kQ));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->precision, Precision::kInt8);
  check_readback(*ok_src, plan, opts.output, ok_src->spec.num_layers);
}

TEST(QuantizeE2E, SmolLM2GgufGroup64ReadsBack) {
  const fs::path gguf = models_dir() / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " missing: run scripts/fetch-models.sh";
  auto src = load_model(gguf);
  ASSERT_TRUE(src) << src.status().to_string();
  EXPECT_EQ(src->spec.hidden_size, 576);
  // K = 576 = 9 x 64: group 64 fits every module (down reads 1536 = 24 x 64). First and last layers int8.
  PlanTable plan = uniform_plan(src->spec, {Precision::kInt4, 64});
  plan.layers.front().fill({Precision::kInt8, 64});
  plan.layers.back().fill({Precision::kInt8, 64});
  TempDir tmp;
  QuantizeOptions opts;
  opts.output = tmp.path() / "smol";
  opts.progress = false;
  auto rep = quantize_model(*src, plan, opts);
  ASSERT_TRUE(rep) << rep.status().to_string();
  EXPECT_EQ(rep->shards, 1);
  EXPECT_LT(rep->output_bytes, rep->input_bytes);
#if defined(__SANITIZE_ADDRESS__)
  const int64_t layers_to_check = 2;  // sanitizer builds are ~10x slower; the release build checks all
#else
  const int64_t layers_to_check = src->spec.num_layers;
#endif
  check_readback(*src, plan, opts.output, layers_to_check);
  check_readback(*src, plan, opts.output, 0);  // spec and config only
  // The last layer is int8 too: check it in every build.
  auto back = load_model(opts.output);
  ASSERT_TRUE(back);
  auto s = scheme_for_module(*back->quantization_config, module_hf_prefix(src->spec.num_layers - 1, Module::kDown));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->precision, Precision::kInt8);
}

}  // namespace
}  // namespace rtnq
