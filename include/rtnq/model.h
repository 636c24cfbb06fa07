// The canonical model: one description of "what this model is" (ModelSpec), whatever file it came
// from, and its weights under Hugging Face Llama names and layouts (WeightSource).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rtnq/status.h"
#include "rtnq/tensor.h"

namespace rtnq {

enum class SourceFormat { kHfFolder, kGguf, kLlama2c };
std::string_view source_format_name(SourceFormat f);

// Where the two halves of each rotary pair sit in a q/k head's rows.
//   kHalfSplit:   (i, i + head_dim/2) — Hugging Face; every WeightSource serves this layout.
//   kInterleaved: (2i, 2i + 1)        — Meta, llama.cpp (GGUF), llama2.c files on disk.
enum class RopeLayout { kHalfSplit, kInterleaved };

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                // llama3 only
  double high_freq_factor = 4.0;               // llama3 only
  int64_t original_max_position_embeddings = 8192;  // llama3 only
};

struct ModelSpec {
  std::string architecture = "LlamaForCausalLM";  // HF class name
  std::string model_type = "llama";               // "llama", "mistral", "qwen2"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  RopeLayout rope_layout = RopeLayout::kHalfSplit;  // of the weights as WeightSource serves them
  bool attention_bias = false;                      // q/k/v biases (Qwen2)
  bool tie_word_embeddings = false;
  std::optional<int64_t> sliding_window;            // Mistral
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  DType torch_dtype = DType::kBF16;                 // the model's original dtype
  // The source config.json, when there was one: written back with only our changes applied so
  // that fields we do not model survive a round trip.
  nlohmann::json hf_config;
};

// Validate a spec (positive sizes, heads divide hidden, kv heads divide heads, ...).
Status validate_spec(const ModelSpec& spec);
Expected<ModelSpec> spec_from_hf_config(const nlohmann::json& config);
nlohmann::json spec_to_hf_config(const ModelSpec& spec);

// The seven quantizable linears of a decoder layer, in this fixed order.
enum class Module : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumModules = 7;
std::string_view module_name(Module m);  // "q", "k", "v", "o", "gate", "up", "down"
std::optional<Module> module_from_name(std::string_view name);
// "model.layers.3.self_attn.q_proj" (no ".weight").
std::string module_hf_prefix(int64_t layer, Module m);
// (out_features, in_features) of the module under `spec`.
std::pair<int64_t, int64_t> module_shape(const ModelSpec& spec, Module m);

// Vocabulary as read from a source; enough to run the tokenizer and to write tokenizer.json.
struct TokenizerData {
  enum class Kind { kNone, kHfJson, kGpt2Bpe, kSentencePiece };
  Kind kind = Kind::kNone;
  std::filesystem::path hf_tokenizer_json;     // kHfJson: the file to load / copy
  std::vector<std::string> tokens;             // kGpt2Bpe / kSentencePiece
  std::vector<float> scores;                   // kSentencePiece
  std::vector<int32_t> token_types;            // GGUF token types, where known
  std::vector<std::string> merges;             // kGpt2Bpe: "a b"
  std::string pre;                             // GGUF tokenizer.ggml.pre
  int64_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = true, add_eos = false;
  std::string chat_template;
};

// Weights under Hugging Face names ("model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight",
// "model.norm.weight", "lm_head.weight", ...) and layouts ([out, in], q/k rows half-split).
// Implementations are thread-safe: get() may be called from several threads at once.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Every tensor, in a stable order, with the dtype and shape get() will return.
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  // Zero-copy where the file holds the tensor as served; otherwise a freshly converted buffer
  // (GGUF block formats dequantized to F32, permuted q/k rows).
  virtual Expected<TensorView> get(const std::string& name) const = 0;
  // The dtype and encoding the tensor has in the file ("Q4_K", "BF16", ...), for `inspect`.
  virtual std::string stored_type(const std::string& name) const = 0;
  bool contains(const std::string& name) const;
  const TensorInfo* find(const std::string& name) const;
};

struct LoadedModel {
  SourceFormat format = SourceFormat::kHfFolder;
  std::filesystem::path path;
  ModelSpec spec;
  std::unique_ptr<WeightSource> weights;
  TokenizerData tokenizer;
  // compressed-tensors / other `quantization_config` of an already quantized checkpoint.
  std::optional<nlohmann::json> quantization_config;
  // Files copied verbatim to a quantized output (tokenizer*.json, generation_config.json, ...).
  std::vector<std::filesystem::path> side_files;
  // Free-form facts for `inspect` (GGUF metadata keys, llama2.c header), as key/value text.
  std::vector<std::pair<std::string, std::string>> details;
};

// Open a model from a Hugging Face folder (config.json + safetensors), a .gguf file, or a llama2.c
// .bin checkpoint (tokenizer looked for beside it: tok*.bin / tokenizer.bin). Detects the format.
Expected<LoadedModel> load_model(const std::filesystem::path& path);

}  // namespace rtnq
