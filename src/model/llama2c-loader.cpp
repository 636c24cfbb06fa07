// llama2.c checkpoints (karpathy/llama2.c, "version 0" export: run.c's format).
//
// Layout: 7 x int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}; a
// negative vocab_size means a separate classifier follows the weights. Then fp32 arrays, each layer's
// matrix stored [out, in] (run.c's matmul reads w[i * in + j] for output i):
//   token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim], wv (same),
//   wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim],
//   rms_final [dim], freq_cis_real and freq_cis_imag [seq_len, head_size / 2] (unused), wcls [vocab, dim].
// w1/w3/w2 are gate/up/down. run.c rotates adjacent pairs (2i, 2i+1) of each head, so wq/wk rows are
// in the interleaved RoPE layout and are permuted to Hugging Face's half-split layout when served.
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "core/check.h"
#include "core/mapped-file.h"
#include "io/llama2c-tokenizer.h"
#include "model/loaders.h"

namespace rtnq {

namespace {

struct Llama2cHeader {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};
static_assert(sizeof(Llama2cHeader) == 28);

// Bounds well past any llama2.c export (Llama-2 70B: dim 8192, hidden 28672, 80 layers, vocab 32000)
// that keep every size computation below far from 64-bit overflow.
constexpr int64_t kMaxDim = 1 << 16, kMaxHidden = 1 << 20, kMaxLayers = 1 << 10, kMaxVocab = 1 << 24,
                  kMaxSeq = 1 << 24;

struct Entry {
  size_t index = 0;       // into infos_
  uint64_t offset = 0;    // byte offset of the tensor in the file
  int64_t rope_heads = 0; // > 0: rows are interleaved-RoPE heads to permute (q: n_heads, k: n_kv_heads)
};

class Llama2cWeights final : public WeightSource {
 public:
  Llama2cWeights(std::shared_ptr<const MappedFile> file, int64_t head_dim) : file_(std::move(file)), head_dim_(head_dim) {}

  void add(std::string name, Shape shape, uint64_t offset, int64_t rope_heads = 0) {
    entries_[name] = Entry{infos_.size(), offset, rope_heads};
    infos_.push_back(TensorInfo{std::move(name), DType::kF32, std::move(shape)});
  }

  const std::vector<TensorInfo>& tensors() const override { return infos_; }

  Expected<TensorView> get(const std::string& name) const override {
    auto it = entries_.find(name);
    if (it == entries_.end())
      return not_found(fmt::format("{}: no tensor '{}' in this llama2.c checkpoint", file_->path().string(), name));
    const Entry& e = it->second;
    const TensorInfo& info = infos_[e.index];
    const float* src = reinterpret_cast<const float*>(file_->data() + e.offset);
    if (e.rope_heads == 0) {
      TensorView v;
      v.info = info;
      v.data = src;
      v.keepalive = file_;
      v.file_backed = true;
      return v;
    }
    float* dst = nullptr;
    TensorView v = make_owned_f32(info.name, info.shape, &dst);
    permute_rows_interleaved_to_half(src, dst, e.rope_heads, head_dim_, info.shape[1]);
    return v;
  }

  std::string stored_type(const std::string& name) const override {
    auto it = entries_.find(name);
    if (it == entries_.end()) return "";
    return it->second.rope_heads > 0 ? "F32 (interleaved RoPE rows)" : "F32";
  }

 private:
  std::shared_ptr<const MappedFile> file_;
  int64_t head_dim_;
  std::vector<TensorInfo> infos_;
  std::unordered_map<std::string, Entry> entries_;
};

Status check_header(const std::string& name, const Llama2cHeader& h) {
  const int64_t vocab = h.vocab_size < 0 ? -int64_t(h.vocab_size) : int64_t(h.vocab_size);
  auto bad = [&](const std::string& why) {
    return corrupt(fmt::format("{}: not a llama2.c checkpoint: {} (header dim={} hidden_dim={} n_layers={} n_heads={} "
                               "n_kv_heads={} vocab_size={} seq_len={})",
                               name, why, h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size,
                               h.seq_len));
  };
  if (h.dim <= 0 || h.dim > kMaxDim) return bad(fmt::format("dim must be in [1, {}]", kMaxDim));
  if (h.hidden_dim <= 0 || h.hidden_dim > kMaxHidden) return bad(fmt::format("hidden_dim must be in [1, {}]", kMaxHidden));
  if (h.n_layers <= 0 || h.n_layers > kMaxLayers) return bad(fmt::format("n_layers must be in [1, {}]", kMaxLayers));
  if (h.n_heads <= 0 || h.dim % h.n_heads != 0) return bad("n_heads must be positive and divide dim");
  if (h.n_kv_heads <= 0 || h.n_heads % h.n_kv_heads != 0) return bad("n_kv_heads must be positive and divide n_heads");
  if ((h.dim / h.n_heads) % 2 != 0) return bad("head size dim / n_heads must be even for RoPE");
  if (vocab == 0 || vocab > kMaxVocab) return bad(fmt::format("|vocab_size| must be in [1, {}]", kMaxVocab));
  if (h.seq_len <= 0 || h.seq_len > kMaxSeq) return bad(fmt::format("seq_len must be in [1, {}]", kMaxSeq));
  return Status::ok();
}

// Finds the tokenizer llama2.c would be run with: tok<vocab>.bin (custom vocabularies), then the
// default tokenizer.bin. None is fine: the model can still be inspected and quantized.
Expected<TokenizerData> find_tokenizer(const std::filesystem::path& checkpoint, int64_t vocab,
                                       std::filesystem::path* found) {
  const std::filesystem::path dir = checkpoint.parent_path().empty() ? "." : checkpoint.parent_path();
  for (const std::string& cand : {fmt::format("tok{}.bin", vocab), std::string("tokenizer.bin")}) {
    std::error_code ec;
    const auto p = dir / cand;
    if (!std::filesystem::is_regular_file(p, ec)) continue;
    auto tok = load_llama2c_tokenizer(p, vocab);
    if (!tok) return tok.status().with_context("tokenizer beside " + checkpoint.string());
    *found = p;
    return tok;
  }
  return TokenizerData{};
}

}  // namespace

Expected<LoadedModel> load_llama2c(const std::filesystem::path& file) {
  RTNQ_ASSIGN_OR_RETURN(auto mf, MappedFile::open(file));
  const std::string name = file.string();
  if (mf->size() < sizeof(Llama2cHeader))
    return corrupt(fmt::format("{}: expected a 28-byte llama2.c header, file has {} bytes", name, mf->size()));
  Llama2cHeader h;
  std::memcpy(&h, mf->data(), sizeof h);
  RTNQ_RETURN_IF_ERROR(check_header(name, h));

  const bool shared = h.vocab_size > 0;
  const int64_t dim = h.dim, hidden = h.hidden_dim, layers = h.n_layers, heads = h.n_heads, kv_heads = h.n_kv_heads;
  const int64_t vocab = shared ? h.vocab_size : -int64_t(h.vocab_size);
  const int64_t head_dim = dim / heads, q_dim = heads * head_dim, kv_dim = kv_heads * head_dim;

  // Element counts of the arrays in file order; the size check below needs them all first.
  const uint64_t n_embed = uint64_t(vocab * dim);
  const uint64_t total_floats = n_embed + uint64_t(layers) * (dim + q_dim * dim + 2 * kv_dim * dim + dim * q_dim + dim +
                                                              3 * hidden * dim) +
                                uint64_t(dim) + 2 * uint64_t(h.seq_len) * uint64_t(head_dim / 2) + (shared ? 0 : n_embed);
  const uint64_t expected_bytes = sizeof(Llama2cHeader) + 4 * total_floats;
  if (mf->size() != expected_bytes)
    return corrupt(fmt::format("{}: expected {} bytes for dim={} hidden_dim={} layers={} heads={} kv_heads={} vocab={}{} "
                               "seq_len={}, found {}",
                               name, expected_bytes, dim, hidden, layers, heads, kv_heads, vocab,
                               shared ? " (shared classifier)" : " (separate classifier)", h.seq_len, mf->size()));

  auto weights = std::make_unique<Llama2cWeights>(mf, head_dim);
  // The per-layer arrays are [layer][...] blocks; remember where each block starts.
  uint64_t off = sizeof(Llama2cHeader);
  auto take = [&off](uint64_t floats) {
    const uint64_t at = off;
    off += 4 * floats;
    return at;
  };
  const uint64_t embed_at = take(n_embed);
  const uint64_t rms_att_at = take(uint64_t(layers * dim));
  const uint64_t wq_at = take(uint64_t(layers * q_dim * dim));
  const uint64_t wk_at = take(uint64_t(layers * kv_dim * dim));
  const uint64_t wv_at = take(uint64_t(layers * kv_dim * dim));
  const uint64_t wo_at = take(uint64_t(layers * dim * q_dim));
  const uint64_t rms_ffn_at = take(uint64_t(layers * dim));
  const uint64_t w1_at = take(uint64_t(layers * hidden * dim));
  const uint64_t w2_at = take(uint64_t(layers * dim * hidden));
  const uint64_t w3_at = take(uint64_t(layers * hidden * dim));
  const uint64_t rms_final_at = take(uint64_t(dim));
  take(2 * uint64_t(h.seq_len) * uint64_t(head_dim / 2));  // freq_cis_real, freq_cis_imag: RoPE is recomputed
  const uint64_t wcls_at = shared ? embed_at : take(n_embed);
  RTNQ_CHECK(off == expected_bytes, "llama2.c offsets {} != size {}", off, expected_bytes);

  weights->add("model.embed_tokens.weight", {vocab, dim}, embed_at);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const auto lu = uint64_t(l);
    weights->add(p + "input_layernorm.weight", {dim}, rms_att_at + 4 * lu * dim);
    weights->add(p + "self_attn.q_proj.weight", {q_dim, dim}, wq_at + 4 * lu * q_dim * dim, heads);
    weights->add(p + "self_attn.k_proj.weight", {kv_dim, dim}, wk_at + 4 * lu * kv_dim * dim, kv_heads);
    weights->add(p + "self_attn.v_proj.weight", {kv_dim, dim}, wv_at + 4 * lu * kv_dim * dim);
    weights->add(p + "self_attn.o_proj.weight", {dim, q_dim}, wo_at + 4 * lu * dim * q_dim);
    weights->add(p + "post_attention_layernorm.weight", {dim}, rms_ffn_at + 4 * lu * dim);
    weights->add(p + "mlp.gate_proj.weight", {hidden, dim}, w1_at + 4 * lu * hidden * dim);
    weights->add(p + "mlp.up_proj.weight", {hidden, dim}, w3_at + 4 * lu * hidden * dim);
    weights->add(p + "mlp.down_proj.weight", {dim, hidden}, w2_at + 4 * lu * dim * hidden);
  }
  weights->add("model.norm.weight", {dim}, rms_final_at);
  // A tied model has no lm_head tensor, as in Hugging Face checkpoints with tie_word_embeddings.
  if (!shared) weights->add("lm_head.weight", {vocab, dim}, wcls_at);

  LoadedModel m;
  m.format = SourceFormat::kLlama2c;
  m.path = file;
  ModelSpec& s = m.spec;
  s.architecture = "LlamaForCausalLM";
  s.model_type = "llama";
  s.hidden_size = dim;
  s.intermediate_size = hidden;
  s.num_layers = layers;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.head_dim = head_dim;
  s.vocab_size = vocab;
  s.max_position_embeddings = h.seq_len;
  s.rms_norm_eps = 1e-5;  // run.c's rmsnorm
  s.rope_theta = 10000.0; // run.c's RoPE base
  s.rope_layout = RopeLayout::kHalfSplit;
  s.tie_word_embeddings = shared;
  s.bos_token_id = 1;
  s.eos_token_ids = {2};
  s.torch_dtype = DType::kF32;
  m.weights = std::move(weights);

  std::filesystem::path tok_path;
  RTNQ_ASSIGN_OR_RETURN(m.tokenizer, find_tokenizer(file, vocab, &tok_path));

  m.details = {
      {"llama2c.dim", std::to_string(h.dim)},
      {"llama2c.hidden_dim", std::to_string(h.hidden_dim)},
      {"llama2c.n_layers", std::to_string(h.n_layers)},
      {"llama2c.n_heads", std::to_string(h.n_heads)},
      {"llama2c.n_kv_heads", std::to_string(h.n_kv_heads)},
      {"llama2c.vocab_size", std::to_string(h.vocab_size)},
      {"llama2c.seq_len", std::to_string(h.seq_len)},
      {"llama2c.classifier", shared ? "shared with token embedding" : "separate"},
      {"llama2c.rope_layout_on_disk", "interleaved (q/k rows permuted to half-split when served)"},
      {"llama2c.tokenizer", tok_path.empty() ? std::string("none found (tok<vocab>.bin / tokenizer.bin)") : tok_path.string()},
  };
  return m;
}

}  // namespace rtnq
