// A Hugging Face folder: config.json + model.safetensors (or shards listed by
// model.safetensors.index.json) + tokenizer files. Tensors are served as stored, zero-copy from the
// mappings; quantized projections in compressed-tensors pack-quantized form are served raw too.
#include <algorithm>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "core/progress.h"
#include "core/read-file.h"
#include "io/safetensors.h"
#include "model/loaders.h"

namespace fs = std::filesystem;

namespace rtnq {

namespace {

using json = nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
// Copied verbatim next to a quantized output; the tokenizer and generation settings live here.
constexpr const char* kSideFiles[] = {"tokenizer.json",          "tokenizer_config.json", "special_tokens_map.json",
                                      "generation_config.json",  "tokenizer.model",       "vocab.json",
                                      "merges.txt",              "added_tokens.json",     "chat_template.jinja"};

Expected<json> read_json_file(const fs::path& path) {
  RTNQ_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return corrupt(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
}

// All tensors of one or more safetensors files under one namespace; a name is served by the one
// shard that holds it.
class SafetensorsWeightSource final : public WeightSource {
 public:
  static Expected<std::unique_ptr<SafetensorsWeightSource>> create(
      std::vector<std::shared_ptr<const SafetensorsFile>> shards) {
    auto src = std::unique_ptr<SafetensorsWeightSource>(new SafetensorsWeightSource());
    for (size_t s = 0; s < shards.size(); ++s) {
      for (const TensorInfo& t : shards[s]->tensors()) {
        auto [it, inserted] = src->where_.emplace(t.name, s);
        if (!inserted)
          return corrupt(fmt::format("tensor '{}' is stored twice: in {} and in {}", t.name,
                                     shards[it->second]->path().string(), shards[s]->path().string()));
        src->tensors_.push_back(t);
      }
    }
    src->shards_ = std::move(shards);
    return src;
  }

  const std::vector<TensorInfo>& tensors() const override { return tensors_; }

  Expected<TensorView> get(const std::string& name) const override {
    auto it = where_.find(name);
    if (it == where_.end()) return not_found(fmt::format("no tensor '{}' in this checkpoint", name));
    return shards_[it->second]->view(name);
  }

  std::string stored_type(const std::string& name) const override {
    auto it = where_.find(name);
    if (it == where_.end()) return "";
    return std::string(dtype_name(shards_[it->second]->find(name)->dtype));
  }

  const std::vector<std::shared_ptr<const SafetensorsFile>>& shards() const { return shards_; }
  const TensorInfo* lookup(const std::string& name) const {
    auto it = where_.find(name);
    return it == where_.end() ? nullptr : shards_[it->second]->find(name);
  }

 private:
  SafetensorsWeightSource() = default;
  std::vector<std::shared_ptr<const SafetensorsFile>> shards_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> where_;
};

// Shard file names come from a file the user downloaded: keep them inside the folder.
bool is_plain_file_name(const std::string& n) {
  return !n.empty() && n.find('/') == std::string::npos && n.find('\\') == std::string::npos && n != "." &&
         n != "..";
}

Expected<std::vector<std::shared_ptr<const SafetensorsFile>>> open_shards(const fs::path& dir) {
  std::vector<std::shared_ptr<const SafetensorsFile>> shards;
  std::error_code ec;
  // transformers prefers the single file when both exist; so do we.
  if (fs::is_regular_file(dir / kSingleFile, ec)) {
    RTNQ_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(dir / kSingleFile));
    shards.push_back(std::move(f));
    return shards;
  }
  const fs::path index_path = dir / kIndexFile;
  if (!fs::is_regular_file(index_path, ec)) {
    if (fs::exists(dir / "pytorch_model.bin", ec) || fs::exists(dir / "pytorch_model.bin.index.json", ec))
      return unsupported(fmt::format("{}: only pickle weights (pytorch_model.bin) here; convert them to safetensors",
                                     dir.string()));
    return not_found(fmt::format("{}: neither {} nor {} found", dir.string(), kSingleFile, kIndexFile));
  }
  RTNQ_ASSIGN_OR_RETURN(json index, read_json_file(index_path));
  auto wm = index.is_object() ? index.find("weight_map") : index.end();
  if (wm == index.end() || !wm->is_object())
    return corrupt(fmt::format("{}: missing the 'weight_map' object", index_path.string()));
  std::map<std::string, std::vector<std::string>> by_shard;  // sorted: shards open in file-name order
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      return corrupt(fmt::format("{}: weight_map entry for tensor '{}' must be a file name, got {}",
                                 index_path.string(), it.key(), it->dump()));
    const std::string shard = it->get<std::string>();
    if (!is_plain_file_name(shard))
      return corrupt(fmt::format("{}: tensor '{}' maps to '{}', which is not a file name inside the folder",
                                 index_path.string(), it.key(), shard));
    by_shard[shard].push_back(it.key());
  }
  if (by_shard.empty()) return corrupt(fmt::format("{}: weight_map is empty", index_path.string()));
  for (const auto& [shard, names] : by_shard) {
    const fs::path p = dir / shard;
    if (!fs::is_regular_file(p, ec))
      return not_found(fmt::format("{}: maps tensor '{}' (and {} more) to shard {}, which does not exist",
                                   index_path.string(), names.front(), names.size() - 1, p.string()));
    RTNQ_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(p));
    for (const std::string& n : names)
      if (!f->contains(n))
        return corrupt(fmt::format("{}: maps tensor '{}' to {}, which has no such tensor", index_path.string(), n,
                                   p.string()));
    shards.push_back(std::move(f));
  }
  return shards;
}

// One accepted compressed-tensors weight scheme (bits, group size or kWholeRow). The model layer
// sits below quant, so it keeps its own spelling of quant's kPerChannel.
constexpr int64_t kWholeRow = -1;
struct PackScheme {
  int bits;
  int64_t group_size;
};

Expected<std::vector<PackScheme>> parse_pack_schemes(const json& qc, const fs::path& config_path) {
  const std::string where = config_path.string() + ": quantization_config";
  if (!qc.is_object()) return corrupt(fmt::format("{} must be an object", where));
  const std::string method = qc.value("quant_method", std::string());
  if (method != "compressed-tensors")
    return unsupported(fmt::format("{}: quant_method '{}' is not supported (only compressed-tensors)", where, method));
  if (auto f = qc.find("format"); f != qc.end() && f->is_string() && *f != "pack-quantized" && *f != "mixed-precision")
    return unsupported(fmt::format("{}: format '{}' is not supported (only pack-quantized)", where, f->get<std::string>()));
  std::vector<PackScheme> out;
  auto groups = qc.find("config_groups");
  // A plan that keeps every module writes no groups; then no tensor may be packed, which the
  // per-tensor check enforces.
  if (groups == qc.end() || groups->is_null()) return out;
  if (!groups->is_object()) return corrupt(fmt::format("{}: 'config_groups' must be an object", where));
  for (auto g = groups->begin(); g != groups->end(); ++g) {
    const std::string gw = fmt::format("{}.config_groups.{}", where, g.key());
    if (!g->is_object()) return corrupt(fmt::format("{} must be an object", gw));
    auto w = g->find("weights");
    if (w == g->end() || w->is_null()) continue;  // activation-only group
    if (!w->is_object()) return corrupt(fmt::format("{}.weights must be an object", gw));
    if (auto f = g->find("format"); f != g->end() && f->is_string() && *f != "pack-quantized")
      return unsupported(fmt::format("{}: format '{}' is not supported (only pack-quantized)", gw, f->get<std::string>()));
    auto bits = w->find("num_bits");
    if (bits == w->end() || !bits->is_number_integer()) return corrupt(fmt::format("{}.weights: missing num_bits", gw));
    const int b = bits->get<int>();
    if (b < 2 || b > 8 || 32 % b != 0)
      return unsupported(fmt::format("{}.weights: num_bits {} cannot be packed into int32", gw, b));
    if (w->value("type", std::string("int")) != "int")
      return unsupported(fmt::format("{}.weights: type '{}' is not supported (only int)", gw, w->value("type", "")));
    if (!w->value("symmetric", true))
      return unsupported(fmt::format("{}.weights: asymmetric quantization is not supported", gw));
    const std::string strategy = w->value("strategy", std::string("group"));
    int64_t group = kWholeRow;
    if (strategy == "group") {
      auto gs = w->find("group_size");
      if (gs == w->end() || !gs->is_number_integer() || gs->get<int64_t>() <= 0)
        return corrupt(fmt::format("{}.weights: strategy group needs a positive group_size", gw));
      group = gs->get<int64_t>();
    } else if (strategy != "channel") {
      return unsupported(fmt::format("{}.weights: strategy '{}' is not supported (group or channel)", gw, strategy));
    }
    out.push_back({b, group});
  }
  return out;
}

struct Checker {
  const SafetensorsWeightSource& src;
  const fs::path& dir;
  const std::vector<PackScheme>* schemes;  // null: the checkpoint is not quantized
  const fs::path config_path;

  Status missing(const std::string& name, const std::string& expected_shape) const {
    return not_found(fmt::format("{}: tensor '{}' is missing (expected shape {})", dir.string(), name, expected_shape));
  }

  // A float tensor of exactly `expected` shape.
  Status dense(const std::string& name, const Shape& expected) const {
    const TensorInfo* t = src.lookup(name);
    if (!t) return missing(name, shape_to_string(expected));
    if (t->shape != expected)
      return corrupt(fmt::format("{}: tensor '{}' has shape {}, expected {} from config.json", dir.string(), name,
                                 shape_to_string(t->shape), shape_to_string(expected)));
    if (!is_float(t->dtype))
      return corrupt(fmt::format("{}: tensor '{}' has dtype {}, expected a float type (F32, F16, BF16)", dir.string(),
                                 name, dtype_name(t->dtype)));
    return Status::ok();
  }

  // A linear [out, in]: dense `.weight`, or compressed-tensors pack-quantized
  // `.weight_packed` I32 [out, in*bits/32] + `.weight_scale` [out, in/group] + `.weight_shape` [2].
  Status linear(const std::string& prefix, int64_t out, int64_t in) const {
    const bool has_dense = src.lookup(prefix + ".weight") != nullptr;
    const TensorInfo* packed = src.lookup(prefix + ".weight_packed");
    if (has_dense && packed)
      return corrupt(fmt::format("{}: both '{}.weight' and '{}.weight_packed' are stored; which one is meant?",
                                 dir.string(), prefix, prefix));
    if (!packed) return dense(prefix + ".weight", {out, in});
    auto bad = [&](const std::string& what) {
      return corrupt(fmt::format("{}: tensor '{}': {}", dir.string(), prefix, what));
    };
    if (!schemes)
      return corrupt(fmt::format("{}: tensor '{}.weight_packed' is quantized but {} has no quantization_config",
                                 dir.string(), prefix, config_path.string()));
    if (packed->dtype != DType::kI32 || packed->shape.size() != 2 || packed->shape[0] != out)
      return bad(fmt::format("weight_packed is {} {}, expected I32 [{}, in*bits/32] with in = {}",
                             dtype_name(packed->dtype), shape_to_string(packed->shape), out, in));
    if (packed->shape[1] * 32 % in != 0)
      return bad(fmt::format("weight_packed has {} int32 columns, not a whole number of bits for {} inputs",
                             packed->shape[1], in));
    const int64_t bits = packed->shape[1] * 32 / in;
    const TensorInfo* scale = src.lookup(prefix + ".weight_scale");
    if (!scale) return missing(prefix + ".weight_scale", fmt::format("[{}, in_features / group_size]", out));
    if (!is_float(scale->dtype) || scale->shape.size() != 2 || scale->shape[0] != out || scale->shape[1] <= 0 ||
        in % scale->shape[1] != 0)
      return bad(fmt::format("weight_scale is {} {}, expected a float [{}, n_groups] with n_groups dividing {}",
                             dtype_name(scale->dtype), shape_to_string(scale->shape), out, in));
    const int64_t n_groups = scale->shape[1];
    const bool scheme_ok = std::any_of(schemes->begin(), schemes->end(), [&](const PackScheme& s) {
      return s.bits == bits && (s.group_size == kWholeRow ? n_groups == 1 : s.group_size * n_groups == in);
    });
    if (!scheme_ok)
      return bad(fmt::format("stored as {}-bit with group size {}, which no config_groups entry of {} declares", bits,
                             in / n_groups, config_path.string()));
    const std::string shape_name = prefix + ".weight_shape";
    const TensorInfo* shape = src.lookup(shape_name);
    if (!shape) return missing(shape_name, "[2]");
    if ((shape->dtype != DType::kI64 && shape->dtype != DType::kI32) || shape->shape != Shape{2})
      return bad(fmt::format("weight_shape is {} {}, expected I64 [2]", dtype_name(shape->dtype),
                             shape_to_string(shape->shape)));
    RTNQ_ASSIGN_OR_RETURN(TensorView v, src.get(shape_name));
    int64_t dims[2];
    for (int i = 0; i < 2; ++i) {
      if (shape->dtype == DType::kI64) {
        std::memcpy(&dims[i], static_cast<const uint8_t*>(v.data) + 8 * i, 8);
      } else {
        int32_t d;
        std::memcpy(&d, static_cast<const uint8_t*>(v.data) + 4 * i, 4);
        dims[i] = d;
      }
    }
    if (dims[0] != out || dims[1] != in)
      return bad(fmt::format("weight_shape holds [{}, {}], expected [{}, {}] from config.json", dims[0], dims[1], out,
                             in));
    return Status::ok();
  }
};

Status check_weights(const SafetensorsWeightSource& src, const ModelSpec& spec, const fs::path& dir,
                     const std::vector<PackScheme>* schemes, const fs::path& config_path) {
  Checker c{src, dir, schemes, config_path};
  RTNQ_RETURN_IF_ERROR(c.dense("model.embed_tokens.weight", {spec.vocab_size, spec.hidden_size}));
  RTNQ_RETURN_IF_ERROR(c.dense("model.norm.weight", {spec.hidden_size}));
  if (!spec.tie_word_embeddings) RTNQ_RETURN_IF_ERROR(c.linear("lm_head", spec.vocab_size, spec.hidden_size));
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    const std::string layer = fmt::format("model.layers.{}.", l);
    RTNQ_RETURN_IF_ERROR(c.dense(layer + "input_layernorm.weight", {spec.hidden_size}));
    RTNQ_RETURN_IF_ERROR(c.dense(layer + "post_attention_layernorm.weight", {spec.hidden_size}));
    for (int m = 0; m < kNumModules; ++m) {
      const auto [out, in] = module_shape(spec, Module(m));
      const std::string prefix = module_hf_prefix(l, Module(m));
      RTNQ_RETURN_IF_ERROR(c.linear(prefix, out, in));
      if (spec.attention_bias && (Module(m) == Module::kQ || Module(m) == Module::kK || Module(m) == Module::kV))
        RTNQ_RETURN_IF_ERROR(c.dense(prefix + ".bias", {out}));
    }
  }
  return Status::ok();
}

void read_tokenizer(const fs::path& dir, const ModelSpec& spec, LoadedModel& m) {
  std::error_code ec;
  TokenizerData& tok = m.tokenizer;
  tok.bos_id = spec.bos_token_id;
  tok.eos_id = spec.eos_token_ids.empty() ? -1 : spec.eos_token_ids.front();
  if (fs::is_regular_file(dir / "tokenizer.json", ec)) {
    tok.kind = TokenizerData::Kind::kHfJson;
    tok.hf_tokenizer_json = dir / "tokenizer.json";
  }
  // Best effort: tokenizer_config.json refines BOS handling and carries the chat template; a broken
  // one only loses those, since the tokenizer itself is tokenizer.json.
  if (auto tc = read_json_file(dir / "tokenizer_config.json"); tc && tc->is_object()) {
    if (auto it = tc->find("add_bos_token"); it != tc->end() && it->is_boolean()) tok.add_bos = it->get<bool>();
    if (auto it = tc->find("add_eos_token"); it != tc->end() && it->is_boolean()) tok.add_eos = it->get<bool>();
    if (auto it = tc->find("chat_template"); it != tc->end() && it->is_string()) tok.chat_template = it->get<std::string>();
  }
  if (auto jinja = read_file(dir / "chat_template.jinja")) tok.chat_template = std::move(jinja).value();
  for (const char* name : kSideFiles)
    if (fs::is_regular_file(dir / name, ec)) m.side_files.push_back(dir / name);
}

}  // namespace

Expected<LoadedModel> load_hf_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return not_found(fmt::format("{}: not a folder", dir.string()));
  const fs::path config_path = dir / "config.json";
  if (!fs::is_regular_file(config_path, ec))
    return not_found(fmt::format("{}: no config.json (not a Hugging Face model folder?)", dir.string()));
  RTNQ_ASSIGN_OR_RETURN(json config, read_json_file(config_path));
  auto spec = spec_from_hf_config(config);
  if (!spec) return spec.status().with_context(config_path.string());

  LoadedModel m;
  m.format = SourceFormat::kHfFolder;
  m.path = dir;
  m.spec = std::move(spec).value();

  std::vector<PackScheme> schemes;
  const json* qc = nullptr;
  if (auto it = config.find("quantization_config"); it != config.end() && !it->is_null()) {
    qc = &*it;
    RTNQ_ASSIGN_OR_RETURN(schemes, parse_pack_schemes(*qc, config_path));
    m.quantization_config = *qc;
  }

  RTNQ_ASSIGN_OR_RETURN(auto shards, open_shards(dir));
  auto created = SafetensorsWeightSource::create(std::move(shards));
  if (!created) return created.status().with_context(dir.string());
  std::unique_ptr<SafetensorsWeightSource> src = std::move(created).value();
  RTNQ_RETURN_IF_ERROR(check_weights(*src, m.spec, dir, qc ? &schemes : nullptr, config_path));

  uint64_t total = 0;
  for (const auto& s : src->shards()) total += s->mapping()->size();
  m.details.emplace_back("shards", std::to_string(src->shards().size()));
  m.details.emplace_back("tensors", std::to_string(src->tensors().size()));
  m.details.emplace_back("total bytes", fmt::format("{} ({})", total, format_bytes(total)));
  if (qc) m.details.emplace_back("quantization", qc->value("quant_method", std::string("?")));
  m.weights = std::move(src);
  read_tokenizer(dir, m.spec, m);
  return m;
}

}  // namespace rtnq
