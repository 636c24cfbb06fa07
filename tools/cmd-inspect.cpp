// `rtnq inspect PATH`: what a checkpoint is (format, architecture, sizes, RoPE, tokenizer,
// quantization), and with --tensors every tensor as stored. Reads headers only, except the tiny
// `weight_shape` tensors of packed checkpoints.
#include <cstdio>
#include <map>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/progress.h"
#include "rtnq/model.h"

namespace rtnq::cli {
namespace {

using nlohmann::ordered_json;

// Bytes one block of a GGUF type holds and how many weights it covers (ggml's type traits), so that
// `inspect` reports what the file stores rather than the F32 the loader serves.
struct BlockSize {
  int64_t weights;
  int64_t bytes;
};
const std::map<std::string, BlockSize>& gguf_block_sizes() {
  static const std::map<std::string, BlockSize> table = {
      {"F32", {1, 4}},      {"F16", {1, 2}},       {"BF16", {1, 2}},      {"F64", {1, 8}},
      {"I8", {1, 1}},       {"I16", {1, 2}},       {"I32", {1, 4}},       {"I64", {1, 8}},
      {"Q4_0", {32, 18}},   {"Q4_1", {32, 20}},    {"Q5_0", {32, 22}},    {"Q5_1", {32, 24}},
      {"Q8_0", {32, 34}},   {"Q8_1", {32, 36}},    {"Q2_K", {256, 84}},   {"Q3_K", {256, 110}},
      {"Q4_K", {256, 144}}, {"Q5_K", {256, 176}},  {"Q6_K", {256, 210}},  {"Q8_K", {256, 292}},
  };
  return table;
}

uint64_t stored_bytes(const LoadedModel& m, const TensorInfo& info, const std::string& stored) {
  if (m.format != SourceFormat::kGguf) return info.nbytes();
  const std::string base = stored.substr(0, stored.find(' '));
  auto it = gguf_block_sizes().find(base);
  if (it == gguf_block_sizes().end() || info.numel() % it->second.weights != 0) return info.nbytes();
  return uint64_t(info.numel() / it->second.weights * it->second.bytes);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Logical weights: a packed tensor counts the weights its `weight_shape` describes, and its scales,
// zero points and shape tensors are bookkeeping, not parameters.
Expected<int64_t> parameter_count(const LoadedModel& m) {
  int64_t total = 0;
  const WeightSource& w = *m.weights;
  for (const TensorInfo& t : w.tensors()) {
    const std::string& n = t.name;
    if (ends_with(n, ".weight_packed")) {
      const std::string shape_name = n.substr(0, n.size() - std::string_view("_packed").size()) + "_shape";
      if (!w.contains(shape_name)) return corrupt(fmt::format("{}: packed tensor '{}' has no '{}'", m.path.string(), n, shape_name));
      RTNQ_ASSIGN_OR_RETURN(TensorView sv, w.get(shape_name));
      int64_t count = 1;
      for (int64_t i = 0; i < sv.numel(); ++i) {
        int64_t d;
        if (sv.info.dtype == DType::kI64) d = sv.as<int64_t>()[i];
        else if (sv.info.dtype == DType::kI32) d = sv.as<int32_t>()[i];
        else return corrupt(fmt::format("{}: '{}' has dtype {}, expected I32 or I64", m.path.string(), shape_name, dtype_name(sv.info.dtype)));
        count *= d;
      }
      total += count;
      continue;
    }
    const auto dot = n.rfind('.');
    const std::string prefix = dot == std::string::npos ? n : n.substr(0, dot);
    const bool bookkeeping = ends_with(n, ".weight_scale") || ends_with(n, ".weight_zero_point") ||
                             ends_with(n, ".weight_shape") || ends_with(n, ".weight_g_idx");
    if (bookkeeping && w.contains(prefix + ".weight_packed")) continue;
    total += t.numel();
  }
  return total;
}

std::string rope_scaling_text(const RopeScaling& r) {
  switch (r.type) {
    case RopeScaling::Type::kNone: return "none";
    case RopeScaling::Type::kLinear: return fmt::format("linear x{}", r.factor);
    case RopeScaling::Type::kLlama3:
      return fmt::format("llama3 (factor {}, low {}, high {}, original {})", r.factor, r.low_freq_factor,
                         r.high_freq_factor, r.original_max_position_embeddings);
  }
  return "?";
}

std::string tokenizer_kind_text(const TokenizerData& t) {
  switch (t.kind) {
    case TokenizerData::Kind::kNone: return "none";
    case TokenizerData::Kind::kHfJson: return "tokenizer.json";
    case TokenizerData::Kind::kGpt2Bpe: return "gpt2 byte-level BPE";
    case TokenizerData::Kind::kSentencePiece: return "sentencepiece BPE";
  }
  return "?";
}

// "compressed-tensors pack-quantized; group_0: int4 group 128 symmetric, targets [Linear]; ignore: 1 entries"
ordered_json quantization_summary(const nlohmann::json& q) {
  ordered_json out;
  out["method"] = q.value("quant_method", "?");
  if (q.contains("format") && q["format"].is_string()) out["format"] = q["format"];
  ordered_json groups = ordered_json::array();
  if (q.contains("config_groups") && q["config_groups"].is_object()) {
    for (const auto& [name, g] : q["config_groups"].items()) {
      ordered_json s;
      s["name"] = name;
      if (g.contains("weights") && g["weights"].is_object()) {
        const auto& w = g["weights"];
        if (w.contains("num_bits")) s["bits"] = w["num_bits"];
        if (w.contains("type")) s["type"] = w["type"];
        if (w.contains("strategy")) s["strategy"] = w["strategy"];
        if (w.contains("group_size")) s["group_size"] = w["group_size"];
        if (w.contains("symmetric")) s["symmetric"] = w["symmetric"];
      }
      s["targets"] = g.contains("targets") ? ordered_json(g["targets"]) : ordered_json::array();
      groups.push_back(s);
    }
  }
  out["config_groups"] = groups;
  out["ignore_count"] = q.contains("ignore") && q["ignore"].is_array() ? q["ignore"].size() : 0;
  return out;
}

std::string quantization_text(const ordered_json& s) {
  std::string text = s["method"].get<std::string>();
  if (s.contains("format")) text += " " + s["format"].get<std::string>();
  for (const auto& g : s["config_groups"]) {
    std::string targets;
    for (const auto& t : g["targets"]) targets += (targets.empty() ? "" : ", ") + (t.is_string() ? t.get<std::string>() : t.dump());
    const std::string type = g.contains("type") && g["type"].is_string() ? g["type"].get<std::string>() : "?";
    const std::string strategy = g.contains("strategy") && g["strategy"].is_string() ? g["strategy"].get<std::string>() : "?";
    std::string layout = strategy;
    if (strategy == "group" && g.contains("group_size")) layout = "group size " + g["group_size"].dump();
    else if (strategy == "channel") layout = "per-channel";
    text += fmt::format("; {}: {}{}, {}, targets [{}]", g["name"].get<std::string>(), type,
                        g.contains("bits") ? g["bits"].dump() : "?", layout, targets);
  }
  text += fmt::format("; ignore list: {} entries", s["ignore_count"].get<size_t>());
  return text;
}

uint64_t file_bytes(const std::filesystem::path& p) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(p, ec)) return std::filesystem::file_size(p, ec);
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(p, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".safetensors") total += e.file_size(ec);
  return total;
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = int(s.size()) - 3; i > (v < 0 ? 1 : 0); i -= 3) s.insert(size_t(i), ",");
  return s;
}

int run_inspect(const std::string& path, bool list_tensors, bool as_json) {
  auto loaded = load_model(path);
  if (!loaded) return report_error("inspect", loaded.status().to_string());
  const LoadedModel& m = *loaded;
  const ModelSpec& s = m.spec;
  auto params = parameter_count(m);
  if (!params) return report_error("inspect", params.status().to_string());

  uint64_t served = 0, stored = 0;
  ordered_json tensors = ordered_json::array();
  for (const TensorInfo& t : m.weights->tensors()) {
    const std::string st = m.weights->stored_type(t.name);
    const uint64_t sb = stored_bytes(m, t, st);
    served += t.nbytes();
    stored += sb;
    if (list_tensors)
      tensors.push_back({{"name", t.name}, {"stored_type", st}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"bytes", sb}});
  }

  ordered_json j;
  j["path"] = m.path.string();
  j["format"] = source_format_name(m.format);
  j["architecture"] = s.architecture;
  j["model_type"] = s.model_type;
  j["layers"] = s.num_layers;
  j["hidden"] = s.hidden_size;
  j["heads"] = s.num_heads;
  j["kv_heads"] = s.num_kv_heads;
  j["head_dim"] = s.head_dim;
  j["intermediate"] = s.intermediate_size;
  j["vocab"] = s.vocab_size;
  j["max_position_embeddings"] = s.max_position_embeddings;
  j["rms_norm_eps"] = s.rms_norm_eps;
  j["rope"] = {{"theta", s.rope_theta},
               {"scaling", rope_scaling_text(s.rope_scaling)},
               {"layout", s.rope_layout == RopeLayout::kHalfSplit ? "half-split" : "interleaved"}};
  j["tied_embeddings"] = s.tie_word_embeddings;
  j["attention_bias"] = s.attention_bias;
  if (s.sliding_window) j["sliding_window"] = *s.sliding_window;
  j["dtype"] = dtype_name(s.torch_dtype);
  j["parameters"] = *params;
  j["tensor_count"] = m.weights->tensors().size();
  j["stored_bytes"] = stored;
  j["served_bytes"] = served;
  j["file_bytes"] = file_bytes(m.path);
  j["tokenizer"] = {{"kind", tokenizer_kind_text(m.tokenizer)},
                    {"tokens", m.tokenizer.tokens.size()},
                    {"bos_id", m.tokenizer.bos_id},
                    {"eos_id", m.tokenizer.eos_id}};
  if (m.quantization_config) j["quantization"] = quantization_summary(*m.quantization_config);
  else j["quantization"] = nullptr;
  ordered_json details = ordered_json::object();
  for (const auto& [k, v] : m.details) details[k] = v;
  j["details"] = details;
  if (list_tensors) j["tensors"] = tensors;

  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) { out += fmt::format("{:<17}{}\n", fmt::format("{}:", key), value); };
  line("path", m.path.string());
  line("format", std::string(source_format_name(m.format)));
  line("architecture", fmt::format("{} ({})", s.architecture, s.model_type));
  line("layers", std::to_string(s.num_layers));
  line("hidden", std::to_string(s.hidden_size));
  line("heads", fmt::format("{} (kv heads {}, head_dim {})", s.num_heads, s.num_kv_heads, s.head_dim));
  line("intermediate", std::to_string(s.intermediate_size));
  line("vocab", std::to_string(s.vocab_size));
  line("max positions", std::to_string(s.max_position_embeddings));
  line("rms_norm_eps", fmt::format("{}", s.rms_norm_eps));
  line("rope", fmt::format("theta {}, scaling {}, layout {} (as served)", s.rope_theta, rope_scaling_text(s.rope_scaling),
                           s.rope_layout == RopeLayout::kHalfSplit ? "half-split" : "interleaved"));
  line("tied embeddings", s.tie_word_embeddings ? "yes" : "no");
  if (s.attention_bias) line("attention bias", "yes");
  if (s.sliding_window) line("sliding window", std::to_string(*s.sliding_window));
  line("dtype", std::string(dtype_name(s.torch_dtype)));
  line("parameters", with_commas(*params));
  line("tensors", std::to_string(m.weights->tensors().size()));
  line("total bytes", fmt::format("{} stored ({} bytes; {} as served)", format_bytes(stored), stored, served));
  if (m.tokenizer.kind == TokenizerData::Kind::kGpt2Bpe || m.tokenizer.kind == TokenizerData::Kind::kSentencePiece)
    line("tokenizer", fmt::format("{} ({} tokens, bos {}, eos {})", tokenizer_kind_text(m.tokenizer), m.tokenizer.tokens.size(),
                                  m.tokenizer.bos_id, m.tokenizer.eos_id));
  else if (m.tokenizer.kind == TokenizerData::Kind::kHfJson)
    line("tokenizer", m.tokenizer.hf_tokenizer_json.string());
  else
    line("tokenizer", "none");
  line("quantization", m.quantization_config ? quantization_text(j["quantization"]) : "none");
  if (!m.details.empty()) {
    out += "details:\n";
    for (const auto& [k, v] : m.details) {
      std::string shown = v.size() > 200 ? v.substr(0, 200) + "..." : v;
      for (char& c : shown)
        if (c == '\n') c = ' ';
      out += fmt::format("  {}: {}\n", k, shown);
    }
  }
  if (list_tensors) {
    out += fmt::format("{:<52} {:<28} {:<5} {:<16} {}\n", "tensor", "stored", "dtype", "shape", "bytes");
    for (const auto& t : tensors)
      out += fmt::format("{:<52} {:<28} {:<5} {:<16} {}\n", t["name"].get<std::string>(), t["stored_type"].get<std::string>(),
                         t["dtype"].get<std::string>(), shape_to_string(t["shape"].get<Shape>()), t["bytes"].get<uint64_t>());
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

RegisterCommand reg("inspect", "Describe a checkpoint: format, architecture, sizes, tokenizer, quantization", 10,
                    [](CLI::App& sub) -> std::function<int()> {
                      auto path = std::make_shared<std::string>();
                      auto list_tensors = std::make_shared<bool>(false);
                      auto as_json = std::make_shared<bool>(false);
                      sub.add_option("path", *path, "HF folder, .gguf file or llama2.c .bin checkpoint")->required();
                      sub.add_flag("--tensors", *list_tensors, "List every tensor: name, stored type, dtype, shape, bytes");
                      sub.add_flag("--json", *as_json, "Print JSON instead of text");
                      return [=] { return run_inspect(*path, *list_tensors, *as_json); };
                    });

}  // namespace
}  // namespace rtnq::cli
