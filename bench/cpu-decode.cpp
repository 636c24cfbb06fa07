// CPU decode speed against the memory-bandwidth roofline, measured in the same run.
//   bench-cpu-decode [--threads N] [--steps N] [--reps N] [--bf16 MODEL] MODEL...
// For each model: decode tokens/s (median and best of --reps repeats, default 5, one token at a
// time after a short prompt; on a busy machine the best is the steadier number),
// weight bytes read per token, the roofline tokens/s = bandwidth / bytes, and the fraction reached.
// --bf16 MODEL serves every 2-D float weight of MODEL as BF16 (for sources stored otherwise, e.g.
// a GGUF whose blocks the loader dequantizes to F32).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/thread-pool.h"
#include "cpu/simd.h"
#include "engine/llama-model.h"
#include "engine/sampler.h"
#include "rtnq/model.h"

namespace rtnq {
namespace {

using Clock = std::chrono::steady_clock;

// Read bandwidth: every thread streams its slice of a buffer much larger than the caches.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes) {
  std::vector<float> buf(bytes / sizeof(float));
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = float(i & 1023);
  const int64_t n = int64_t(buf.size());
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int rep = 0; rep < 7; ++rep) {
    std::vector<float> partial(size_t(pool.size()) * 64, 0.0f);
    std::mutex mu;
    float total = 0.0f;
    const auto t0 = Clock::now();
    pool.parallel_for(n, 1 << 20, [&](int64_t b, int64_t e) {
      float s = 0.0f;
#if RTNQ_CPU_AVX2
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      int64_t i = b;
      for (; i + 32 <= e; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(&buf[size_t(i)]));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(&buf[size_t(i + 8)]));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(&buf[size_t(i + 16)]));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(&buf[size_t(i + 24)]));
      }
      s = cpu::hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      for (; i < e; ++i) s += buf[size_t(i)];
#else
      for (int64_t i = b; i < e; ++i) s += buf[size_t(i)];
#endif
      std::lock_guard<std::mutex> lock(mu);
      total += s;
    });
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    sink = sink + total;
    best = std::max(best, double(bytes) / sec);
  }
  return best;
}

// Serves 2-D float tensors as BF16 (converted on first use), everything else unchanged.
class Bf16WeightSource final : public WeightSource {
 public:
  explicit Bf16WeightSource(std::unique_ptr<WeightSource> inner) : inner_(std::move(inner)) {
    infos_ = inner_->tensors();
    for (auto& t : infos_)
      if (t.shape.size() == 2 && is_float(t.dtype)) t.dtype = DType::kBF16;
  }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }
  std::string stored_type(const std::string& name) const override { return inner_->stored_type(name); }
  Expected<TensorView> get(const std::string& name) const override {
    RTNQ_ASSIGN_OR_RETURN(TensorView v, inner_->get(name));
    if (v.info.shape.size() != 2 || !is_float(v.info.dtype) || v.info.dtype == DType::kBF16) return v;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
    const TensorView f = to_f32(v);
    auto buf = std::shared_ptr<uint16_t[]>(new uint16_t[size_t(f.numel())]);
    convert_from_f32(f.as<float>(), DType::kBF16, buf.get(), size_t(f.numel()));
    TensorView out;
    out.info = v.info;
    out.info.dtype = DType::kBF16;
    out.data = buf.get();
    out.keepalive = std::shared_ptr<const void>(buf, buf.get());
    cache_.emplace(name, out);
    return out;
  }

 private:
  std::unique_ptr<WeightSource> inner_;
  std::vector<TensorInfo> infos_;
  mutable std::mutex mu_;
  mutable std::map<std::string, TensorView> cache_;
};

struct Row {
  std::string model, weights;
  double gb_per_token = 0, tok_s = 0, best_tok_s = 0, roofline = 0;
};

Expected<Row> bench_model(const std::string& path, bool as_bf16, int threads, int steps, int reps, double bandwidth) {
  RTNQ_ASSIGN_OR_RETURN(LoadedModel loaded, load_model(path));
  if (as_bf16) loaded.weights = std::make_unique<Bf16WeightSource>(std::move(loaded.weights));
  RTNQ_ASSIGN_OR_RETURN(auto model, LlamaModel::create(std::move(loaded), threads));
  Row row;
  row.model = path + (as_bf16 ? " (as BF16)" : "");
  row.weights = model->describe();
  row.gb_per_token = double(model->weight_bytes_per_token()) / 1e9;
  const int64_t V = model->vocab_size();
  std::vector<float> logits(static_cast<size_t>(V));
  std::vector<double> rates;
  for (int rep = 0; rep < reps; ++rep) {
    KvCache cache = model->new_cache(int64_t(steps) + 16);
    const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8};
    RTNQ_RETURN_IF_ERROR(model->forward(prompt, cache, logits.data()));
    const auto t0 = Clock::now();
    for (int s = 0; s < steps; ++s) {
      const int32_t tok[1] = {argmax(logits.data(), V)};
      RTNQ_RETURN_IF_ERROR(model->forward(tok, cache, logits.data()));
    }
    rates.push_back(double(steps) / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(rates.begin(), rates.end());
  row.tok_s = rates[rates.size() / 2];
  row.best_tok_s = rates.back();
  row.roofline = bandwidth / (row.gb_per_token * 1e9);
  return row;
}

}  // namespace
}  // namespace rtnq

int main(int argc, char** argv) {
  using namespace rtnq;
  int threads = 2, steps = 64, reps = 5;
  std::vector<std::pair<std::string, bool>> models;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--bf16" && i + 1 < argc) models.emplace_back(argv[++i], true);
    else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "usage: bench-cpu-decode [--threads N] [--steps N] [--reps N] [--bf16 MODEL] MODEL...\n");
      return 2;
    } else models.emplace_back(a, false);
  }
  if (models.empty()) {
    std::fprintf(stderr, "usage: bench-cpu-decode [--threads N] [--steps N] [--reps N] [--bf16 MODEL] MODEL...\n");
    return 2;
  }
  ThreadPool pool(threads);
  const double bw = measure_read_bandwidth(pool, size_t(1) << 30);
  std::printf("threads %d; read bandwidth %.2f GB/s (best of 7 passes over 1 GiB)\n\n", threads, bw / 1e9);
  std::printf("| model | weights | GB read/token | decode tok/s (median of %d x %d) | best tok/s | roofline tok/s | "
              "fraction (median) |\n", reps, steps);
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  int rc = 0;
  for (const auto& [path, bf16] : models) {
    auto r = bench_model(path, bf16, threads, steps, reps, bw);
    if (!r) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), r.status().to_string().c_str());
      rc = 1;
      continue;
    }
    std::printf("| %s | %s | %.4f | %.1f | %.1f | %.1f | %.0f%% |\n", r->model.c_str(), r->weights.c_str(),
                r->gb_per_token, r->tok_s, r->best_tok_s, r->roofline, 100.0 * r->tok_s / r->roofline);
    std::fflush(stdout);
  }
  return rc;
}
