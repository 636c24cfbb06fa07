// Whole-pipeline quantization benchmark: writes synthetic BF16 Llama checkpoints of two sizes, then
// runs the real `quantize` pipeline (mmap -> RTN -> sharded safetensors) on each, INT4 and INT8,
// with 1 and 2 threads. Prints weights/s, GB/s of BF16 input, per core, and peak RSS per run, so
// that "peak RSS does not grow with model size" is visible side by side.
//
// usage: bench-quantize-model [--gb SMALL,LARGE] [--dir TMPDIR]
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <fmt/format.h>

#include "core/atomic-output.h"
#include "io/safetensors-writer.h"
#include "quant/quantize-pipeline.h"
#include "rtnq/model.h"

namespace fs = std::filesystem;
using namespace rtnq;

namespace {

// Peak RSS since the last reset, in MB (Linux: VmHWM, reset by writing 5 to clear_refs).
double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// A Llama-shaped spec (hidden 2048, intermediate 5632, 16 heads / 4 kv) with as many layers as fit `gb`.
ModelSpec synthetic_spec(double gb) {
  ModelSpec s;
  s.hidden_size = 2048;
  s.intermediate_size = 5632;
  s.num_heads = 16;
  s.num_kv_heads = 4;
  s.head_dim = 128;
  s.vocab_size = 32000;
  s.torch_dtype = DType::kBF16;
  const double per_layer = 2.0 * (2048.0 * 2048 * 2 + 2048.0 * 512 * 2 + 3 * 2048.0 * 5632);
  s.num_layers = std::max<int64_t>(1, int64_t((gb * 1e9 - 2.0 * 2 * 32000 * 2048) / per_layer));
  return s;
}

Status write_synthetic(const ModelSpec& spec, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<TensorInfo> infos;
  auto add = [&](std::string n, Shape sh) { infos.push_back({std::move(n), DType::kBF16, std::move(sh)}); };
  add("model.embed_tokens.weight", {spec.vocab_size, spec.hidden_size});
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    add(fmt::format("model.layers.{}.input_layernorm.weight", l), {spec.hidden_size});
    add(fmt::format("model.layers.{}.post_attention_layernorm.weight", l), {spec.hidden_size});
    for (int m = 0; m < kNumModules; ++m) {
      auto [o, i] = module_shape(spec, Module(m));
      add(module_hf_prefix(l, Module(m)) + ".weight", {o, i});
    }
  }
  add("model.norm.weight", {spec.hidden_size});
  add("lm_head.weight", {spec.vocab_size, spec.hidden_size});
  RTNQ_ASSIGN_OR_RETURN(SafetensorsWriter w, SafetensorsWriter::open(dir / "model.safetensors", infos, {{"format", "pt"}}));
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.f, 0.02f);
  // One random pool reused at shifting offsets: realistic values without generating GBs of randoms.
  std::vector<uint16_t> pool(1 << 22);
  for (auto& x : pool) x = f32_to_bf16(nd(rng));
  for (const auto& t : infos) {
    std::vector<uint16_t> buf(size_t(t.numel()));
    const size_t off = rng() % pool.size();
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = pool[(off + i * 7) % pool.size()];
    RTNQ_RETURN_IF_ERROR(w.write_tensor(t.name, buf.data(), buf.size() * 2));
  }
  RTNQ_RETURN_IF_ERROR(w.close());
  nlohmann::json cfg = spec_to_hf_config(spec);
  return write_text_file(dir / "config.json", cfg.dump(2));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> sizes = {1.0, 3.0};
  fs::path base = fs::temp_directory_path() / fmt::format("rtnq-bench-{}", ::getpid());
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--gb")) {
      sizes.clear();
      std::string v = argv[i + 1];
      for (size_t p = 0; p != std::string::npos;) {
        size_t q = v.find(',', p);
        sizes.push_back(std::stod(v.substr(p, q == std::string::npos ? q : q - p)));
        p = q == std::string::npos ? q : q + 1;
      }
    } else if (!std::strcmp(argv[i], "--dir")) {
      base = fs::path(argv[i + 1]) / fmt::format("rtnq-bench-{}", ::getpid());
    }
  }
  std::printf("| model GB (bf16) | layers | bits | threads | seconds | G weights/s | G weights/s/core | GB/s input | peak RSS MB |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (double gb : sizes) {
    const ModelSpec spec = synthetic_spec(gb);
    const fs::path src = base / fmt::format("src-{}", gb);
    if (Status st = write_synthetic(spec, src); !st.is_ok()) {
      std::fprintf(stderr, "bench: %s\n", st.to_string().c_str());
      return 1;
    }
    auto model = load_model(src);
    if (!model) {
      std::fprintf(stderr, "bench: %s\n", model.status().to_string().c_str());
      return 1;
    }
    int64_t linear_weights = 0;
    for (int64_t l = 0; l < spec.num_layers; ++l)
      for (int m = 0; m < kNumModules; ++m) {
        auto [o, i] = module_shape(spec, Module(m));
        linear_weights += o * i;
      }
    for (int bits : {4, 8})
      for (int threads : {1, 2}) {
        PlanTable plan;
        plan.layers.assign(size_t(spec.num_layers), {});
        for (auto& l : plan.layers) l.fill({bits == 4 ? Precision::kInt4 : Precision::kInt8, 128});
        QuantizeOptions opts;
        opts.output = base / "out";
        opts.force = true;
        opts.threads = threads;
        opts.progress = false;
        reset_peak_rss();
        auto rep = quantize_model(*model, plan, opts);
        if (!rep) {
          std::fprintf(stderr, "bench: %s\n", rep.status().to_string().c_str());
          return 1;
        }
        const double s = rep->seconds;
        std::printf("| %.2f | %lld | %d | %d | %.2f | %.3f | %.3f | %.2f | %.0f |\n", double(rep->input_bytes) / 1e9,
                    (long long)spec.num_layers, bits, threads, s, double(linear_weights) / s / 1e9,
                    double(linear_weights) / s / 1e9 / threads, double(rep->input_bytes) / s / 1e9, peak_rss_mb());
        std::fflush(stdout);
      }
    fs::remove_all(src);
  }
  fs::remove_all(base);
  return 0;
}
