// The Tokenizer base, the factory over TokenizerData, and reading tokenizer.json into a
// ByteBpeConfig. The two algorithms live in sp-tokenizer.cpp and bpe-tokenizer.cpp.

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/read-file.h"
#include "engine/tokenizer.h"

namespace rtnq {
namespace {

// GPT-2's pre-tokenizer; the trailing \s+ catches whitespace before a non-space (which llama.cpp
// leaves as an unmatched stretch: we keep unmatched stretches as pieces too, so both agree).
const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char* kLlama3Regex =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Collect the split regexes of a tokenizer.json pre_tokenizer, in application order.
Status collect_pre_tokenizer(const nlohmann::json& pt, std::vector<std::string>& out) {
  if (pt.is_null()) return Status::ok();
  const std::string type = pt.value("type", "");
  if (type == "Sequence") {
    for (const auto& p : pt.at("pretokenizers")) RTNQ_RETURN_IF_ERROR(collect_pre_tokenizer(p, out));
  } else if (type == "Split") {
    const auto& pat = pt.at("pattern");
    if (pat.contains("Regex")) {
      out.push_back(pat.at("Regex").get<std::string>());
    } else {
      // A literal string: escape it for PCRE2 with \Q...\E.
      out.push_back("\\Q" + pat.at("String").get<std::string>() + "\\E");
    }
    const std::string behavior = pt.value("behavior", "Isolated");
    if (behavior != "Isolated" || pt.value("invert", false))
      return unsupported(fmt::format("pre_tokenizer Split with behavior '{}'{} (only Isolated is supported)", behavior,
                                     pt.value("invert", false) ? " inverted" : ""));
  } else if (type == "Digits") {
    out.push_back(pt.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
  } else if (type == "ByteLevel") {
    if (pt.value("add_prefix_space", false)) return unsupported("ByteLevel pre_tokenizer with add_prefix_space");
    if (pt.value("use_regex", true)) out.push_back(kGpt2Regex);
  } else {
    return unsupported(fmt::format("pre_tokenizer type '{}'", type));
  }
  return Status::ok();
}

}  // namespace

std::string Tokenizer::decode(std::span<const int32_t> tokens) const {
  std::string out;
  int32_t prev = -1;
  for (int32_t t : tokens) {
    if (!is_control(t)) out += decode_token(prev, t);
    prev = t;
  }
  return out;
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && size_t(id) < control_.size() && control_[size_t(id)] != 0;
}

std::vector<std::string> pre_tokenizer_regexes(std::string_view pre) {
  if (pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3" || pre == "dbrx" || pre == "smaug-bpe")
    return {kLlama3Regex};
  if (pre == "qwen2" || pre == "stablelm2" || pre == "deepseek-r1-qwen") return {kQwen2Regex};
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "codeshell" ||
      pre == "exaone" || pre == "minerva-7b")
    return {"\\p{N}", kGpt2Regex};
  return {kGpt2Regex};  // "gpt2", "default", "mpt", "olmo", ...
}

Expected<ByteBpeConfig> byte_bpe_config_from_tokenizer_json(const std::filesystem::path& file) {
  RTNQ_ASSIGN_OR_RETURN(const std::string text, read_file(file));
  ByteBpeConfig cfg;
  try {
    const auto j = nlohmann::json::parse(text);
    const auto& model = j.at("model");
    if (model.value("type", "BPE") != "BPE")
      return unsupported(fmt::format("{}: model type '{}' (expected BPE)", file.string(), model.value("type", "")));
    const auto& vocab = model.at("vocab");
    int64_t max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) max_id = std::max<int64_t>(max_id, it.value().get<int64_t>());
    for (const auto& a : j.value("added_tokens", nlohmann::json::array()))
      max_id = std::max<int64_t>(max_id, a.at("id").get<int64_t>());
    cfg.tokens.assign(size_t(max_id + 1), std::string());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) cfg.tokens[size_t(it.value().get<int64_t>())] = it.key();
    for (const auto& m : model.at("merges")) {
      if (m.is_string()) cfg.merges.push_back(m.get<std::string>());
      else cfg.merges.push_back(m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    }
    for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
      const int32_t id = a.at("id").get<int32_t>();
      cfg.tokens[size_t(id)] = a.at("content").get<std::string>();
      cfg.special_ids.push_back(id);
      if (a.value("special", false)) cfg.control_ids.push_back(id);
    }
    RTNQ_RETURN_IF_ERROR(collect_pre_tokenizer(j.value("pre_tokenizer", nlohmann::json()), cfg.split_regexes)
                             .with_context(file.string()));
    // BOS from the post-processor template ("<s> $A" / "<|begin_of_text|> $A").
    const auto pp = j.value("post_processor", nlohmann::json());
    std::vector<nlohmann::json> procs;
    if (pp.is_object() && pp.value("type", "") == "Sequence") procs = pp.at("processors").get<std::vector<nlohmann::json>>();
    else if (pp.is_object()) procs.push_back(pp);
    for (const auto& p : procs) {
      if (p.value("type", "") != "TemplateProcessing") continue;
      const auto& single = p.at("single");
      if (!single.empty() && single.at(0).contains("SpecialToken")) {
        const std::string name = single.at(0).at("SpecialToken").at("id").get<std::string>();
        const auto& st = p.at("special_tokens").at(name);
        cfg.bos_id = st.at("ids").at(0).get<int32_t>();
        cfg.add_bos = true;
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return corrupt(fmt::format("{}: not a tokenizer.json this engine understands: {}", file.string(), e.what()));
  }
  return cfg;
}

Expected<std::unique_ptr<Tokenizer>> make_tokenizer(const TokenizerData& data) {
  switch (data.kind) {
    case TokenizerData::Kind::kNone:
      return not_found("the model has no tokenizer (for llama2.c, put tok<vocab>.bin beside the checkpoint)");
    case TokenizerData::Kind::kSentencePiece:
      return make_sentencepiece_tokenizer(data);
    case TokenizerData::Kind::kGpt2Bpe: {
      ByteBpeConfig cfg;
      cfg.tokens = data.tokens;
      cfg.merges = data.merges;
      cfg.split_regexes = pre_tokenizer_regexes(data.pre);
      // GGUF token types: 3 = CONTROL, 4 = USER_DEFINED; both are spelled literally in text.
      for (size_t i = 0; i < data.token_types.size(); ++i) {
        if (data.token_types[i] == 3 || data.token_types[i] == 4) cfg.special_ids.push_back(int32_t(i));
        if (data.token_types[i] == 3) cfg.control_ids.push_back(int32_t(i));
      }
      cfg.bos_id = int32_t(data.bos_id);
      cfg.eos_id = int32_t(data.eos_id);
      cfg.add_bos = data.add_bos && data.bos_id >= 0;
      return make_byte_bpe_tokenizer(std::move(cfg));
    }
    case TokenizerData::Kind::kHfJson: {
      RTNQ_ASSIGN_OR_RETURN(ByteBpeConfig cfg, byte_bpe_config_from_tokenizer_json(data.hf_tokenizer_json));
      if (data.bos_id >= 0) cfg.bos_id = int32_t(data.bos_id);
      if (data.eos_id >= 0) cfg.eos_id = int32_t(data.eos_id);
      return make_byte_bpe_tokenizer(std::move(cfg));
    }
  }
  return unsupported("unknown tokenizer kind");
}

}  // namespace rtnq
