// A Llama-family decoder (Llama 1-3, Mistral, Qwen2, SmolLM) ready to run on the CPU ops, built
// from any LoadedModel: dense weights stay zero-copy views of the source, RTN-packed linears
// (`<prefix>.weight_packed` / `weight_scale` / `weight_shape`) are dequantized on the fly.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/thread-pool.h"
#include "cpu/linear.h"
#include "engine/kv-cache.h"
#include "rtnq/model.h"
#include "rtnq/status.h"

namespace rtnq {

class LlamaModel {
 public:
  // Takes the loaded model (its WeightSource keeps the memory maps alive). n_threads <= 0: all cores.
  static Expected<std::unique_ptr<LlamaModel>> create(LoadedModel model, int n_threads = 0);

  const ModelSpec& spec() const { return loaded_.spec; }
  const LoadedModel& loaded() const { return loaded_; }
  int64_t vocab_size() const { return loaded_.spec.vocab_size; }
  ThreadPool& pool() { return pool_; }

  // A cache for up to max_seq positions (<= 0: the model's max_position_embeddings).
  KvCache new_cache(int64_t max_seq = 0) const;

  // Runs tokens at positions [cache.size(), cache.size() + n) and appends them to the cache.
  // logits: [n, vocab] when all_logits, else [vocab] for the last token only.
  Status forward(std::span<const int32_t> tokens, KvCache& cache, float* logits, bool all_logits = false);

  // Bytes of weights one decode step reads (every linear, the norms, one embedding row).
  uint64_t weight_bytes_per_token() const;
  // "30 layers; linears: 150 INT4 g128, 60 BF16; lm_head BF16 (tied)".
  std::string describe() const;

 private:
  struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    cpu::Linear q, k, v, o, gate, up, down;
    std::vector<float> q_bias, k_bias, v_bias;
  };
  LlamaModel(LoadedModel model, int n_threads);
  Status build();
  Expected<cpu::Linear> load_linear(const std::string& prefix, int64_t out, int64_t in);
  Expected<std::vector<float>> load_vector(const std::string& name, int64_t n, bool optional);

  LoadedModel loaded_;
  ThreadPool pool_;
  std::vector<Layer> layers_;
  TensorView embed_;
  std::vector<float> final_norm_;
  cpu::Linear lm_head_;
  bool lm_head_tied_ = false;
  std::vector<float> inv_freq_;
};

}  // namespace rtnq
