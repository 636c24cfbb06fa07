// The engine on RTN-packed weights: stories260K quantized in memory (through the quant module's
// rtn_quantize, served under compressed-tensors names) runs through the packed linears, and
// (1) equals a dense model built from the dequantized weights, (2) stays close to the original.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "quant/pack.h"
#include "rtnq/quant.h"
#include "test-util.h"

namespace rtnq {
namespace {

using test::shared_dir;

bool is_layer_linear(const std::string& n) {
  return n.rfind("model.layers.", 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, "_proj.weight") == 0;
}

template <typename T>
TensorView owned(std::string name, DType dt, Shape shape, std::vector<T> data) {
  auto buf = std::make_shared<std::vector<T>>(std::move(data));
  TensorView v;
  v.info = {std::move(name), dt, std::move(shape)};
  v.data = buf->data();
  v.keepalive = std::shared_ptr<const void>(buf, buf->data());
  return v;
}

// Serves every decoder linear either packed (compressed-tensors names) or as its dequantized fp32
// values, everything else unchanged.
class RtnSource final : public WeightSource {
 public:
  RtnSource(const WeightSource& inner, int bits, bool dequantized) {
    for (const TensorInfo& t : inner.tensors()) {
      auto v = inner.get(t.name);
      EXPECT_TRUE(v) << v.status().to_string();
      if (!is_layer_linear(t.name)) {
        add(*v);
        continue;
      }
      const int64_t rows = t.shape[0], cols = t.shape[1];
      const int64_t group = cols % 32 == 0 ? 32 : kPerChannel;
      auto q = rtn_quantize(*v, bits, group, DType::kBF16);
      EXPECT_TRUE(q) << q.status().to_string();
      const std::string prefix = t.name.substr(0, t.name.size() - std::string(".weight").size());
      if (dequantized) {
        std::vector<float> w(static_cast<size_t>(rows * cols));
        dequantize_rows(q->packed.data(), q->scales.data(), DType::kBF16, rows, cols, bits, group, w.data());
        add(owned(t.name, DType::kF32, {rows, cols}, std::move(w)));
      } else {
        add(owned(prefix + ".weight_packed", DType::kI32, {rows, int64_t(q->packed.size()) / rows}, q->packed));
        add(owned(prefix + ".weight_scale", DType::kBF16, {rows, q->n_groups()}, q->scales));
        add(owned(prefix + ".weight_shape", DType::kI64, {2}, std::vector<int64_t>{rows, cols}));
      }
    }
  }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }
  Expected<TensorView> get(const std::string& name) const override {
    auto it = views_.find(name);
    if (it == views_.end()) return not_found("tensor '" + name + "' is missing");
    return it->second;
  }
  std::string stored_type(const std::string& name) const override { return "test"; }

 private:
  void add(const TensorView& v) {
    infos_.push_back(v.info);
    views_.emplace(v.info.name, v);
  }
  std::vector<TensorInfo> infos_;
  std::map<std::string, TensorView> views_;
};

std::unique_ptr<LlamaModel> make(int bits, bool dequantized) {
  auto loaded = load_model(shared_dir() / "models" / "stories260K" / "stories260K.bin");
  EXPECT_TRUE(loaded) << loaded.status().to_string();
  if (!loaded) return nullptr;
  if (bits > 0) loaded->weights = std::make_unique<RtnSource>(*loaded->weights, bits, dequantized);
  auto m = LlamaModel::create(std::move(*loaded), 2);
  EXPECT_TRUE(m) << m.status().to_string();
  return m ? std::move(*m) : nullptr;
}

TEST(QuantizedModel, PackedEqualsDequantizedDenseAndStaysClose) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 gen(seed);
  auto base = make(0, false);
  ASSERT_TRUE(base);
  const int64_t V = base->vocab_size();
  std::vector<int32_t> toks{1};
  for (int i = 0; i < 47; ++i) toks.push_back(int32_t(3 + gen() % uint32_t(V - 3)));
  const int64_t n = int64_t(toks.size());
  std::vector<float> ref(static_cast<size_t>(n * V));
  KvCache cb = base->new_cache(64);
  ASSERT_TRUE(base->forward(toks, cb, ref.data(), true).is_ok());

  for (int bits : {8, 4}) {
    auto packed = make(bits, false);
    auto dense = make(bits, true);
    ASSERT_TRUE(packed && dense);
    EXPECT_NE(packed->describe().find(fmt::format("INT{}", bits)), std::string::npos) << packed->describe();
    std::vector<float> lp(ref.size()), ld(ref.size());
    KvCache c1 = packed->new_cache(64), c2 = dense->new_cache(64);
    ASSERT_TRUE(packed->forward(toks, c1, lp.data(), true).is_ok());
    ASSERT_TRUE(dense->forward(toks, c2, ld.data(), true).is_ok());
    // Same weights, same kernels on the batched path: identical logits.
    for (size_t i = 0; i < lp.size(); ++i) ASSERT_EQ(lp[i], ld[i]) << "bits " << bits << " index " << i;
    // One-token decode through the fused packed kernels agrees to fp32 rounding.
    KvCache c3 = packed->new_cache(64);
    std::vector<float> one(static_cast<size_t>(V));
    double max_diff = 0, max_ref = 0;
    for (int64_t t = 0; t < n; ++t) {
      const int32_t tk[1] = {toks[size_t(t)]};
      ASSERT_TRUE(packed->forward(tk, c3, one.data()).is_ok());
      for (int64_t v = 0; v < V; ++v) {
        max_diff = std::max(max_diff, double(std::abs(one[size_t(v)] - lp[size_t(t * V + v)])));
        max_ref = std::max(max_ref, double(std::abs(lp[size_t(t * V + v)])));
      }
    }
    EXPECT_LT(max_diff, 1e-4 * max_ref) << "bits " << bits;
    // Close to the original: INT8 barely moves the logits; INT4 moves them more.
    double err = 0, mag = 0;
    for (size_t i = 0; i < ref.size(); ++i) err += std::pow(lp[i] - ref[i], 2), mag += std::pow(ref[i], 2);
    const double rel = std::sqrt(err / mag);
    std::printf("bits %d: relative logit error %.5f\n", bits, rel);
    EXPECT_GT(rel, 0.0);
    EXPECT_LT(rel, bits == 8 ? 0.02 : 0.25);
  }
}

}  // namespace
}  // namespace rtnq
