#include "io/tokenizer-export.h"

#include <algorithm>
#include <fstream>
#include <unordered_map>

#include <fmt/format.h>

#include "io/llama2c-tokenizer.h"

namespace rtnq {

using nlohmann::json;

namespace {

const char* const kSpaceMark = "\xE2\x96\x81";  // '▁', SentencePiece's visible space

// GPT-2's split regex (also what ByteLevel's use_regex applies).
const char* const kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// Llama 3 (llama.cpp "llama-bpe"): numbers in groups of up to three.
const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but every digit on its own.
const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Byte offsets where each UTF-8 code point starts (invalid bytes count as one code point each).
std::vector<size_t> code_point_starts(const std::string& s) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size();) {
    starts.push_back(i);
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    i += std::min(n, s.size() - i);
  }
  return starts;
}

json added_token(int64_t id, const std::string& content, bool special) {
  return json{{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
              {"rstrip", false},    {"normalized", false}, {"special", special}};
}

int32_t type_of(const TokenizerData& t, size_t i) {
  return i < t.token_types.size() ? t.token_types[i] : kTokenNormal;
}

bool in_range(const TokenizerData& t, int64_t id) { return id >= 0 && id < int64_t(t.tokens.size()); }

// Tokens the tokenizer must match whole, before the model sees the text: control and user-defined
// types, plus BOS/EOS/UNK/PAD whatever their recorded type.
json added_tokens_of(const TokenizerData& t) {
  json out = json::array();
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    const int32_t ty = type_of(t, i);
    const auto id = int64_t(i);
    const bool named = id == t.bos_id || id == t.eos_id || id == t.unk_id || id == t.pad_id;
    if (ty == kTokenControl || ty == kTokenUnknown || named) out.push_back(added_token(id, t.tokens[i], true));
    else if (ty == kTokenUserDefined) out.push_back(added_token(id, t.tokens[i], false));
  }
  return out;
}

// BOS (and EOS) around each sequence, as the source's add_bos / add_eos ask.
json template_processor(const TokenizerData& t) {
  const bool bos = t.add_bos && in_range(t, t.bos_id);
  const bool eos = t.add_eos && in_range(t, t.eos_id);
  auto special = [](const std::string& tok, int type_id) { return json{{"SpecialToken", {{"id", tok}, {"type_id", type_id}}}}; };
  auto seq = [](const char* id, int type_id) { return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
  json single = json::array(), pair = json::array(), specials = json::object();
  for (int part = 0; part < 2; ++part) {
    json& dst = part == 0 ? single : pair;
    for (int s = 0; s <= part; ++s) {
      if (bos) dst.push_back(special(t.tokens[size_t(t.bos_id)], s));
      dst.push_back(seq(s == 0 ? "A" : "B", s));
      if (eos) dst.push_back(special(t.tokens[size_t(t.eos_id)], s));
    }
  }
  if (bos) specials[t.tokens[size_t(t.bos_id)]] = {{"id", t.tokens[size_t(t.bos_id)]}, {"ids", {t.bos_id}}, {"tokens", {t.tokens[size_t(t.bos_id)]}}};
  if (eos) specials[t.tokens[size_t(t.eos_id)]] = {{"id", t.tokens[size_t(t.eos_id)]}, {"ids", {t.eos_id}}, {"tokens", {t.tokens[size_t(t.eos_id)]}}};
  return json{{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

json vocab_of(const TokenizerData& t) {
  json vocab = json::object();
  // A duplicated piece keeps its first id, as a lookup by piece would find it.
  for (size_t i = 0; i < t.tokens.size(); ++i)
    if (!vocab.contains(t.tokens[i])) vocab[t.tokens[i]] = int64_t(i);
  return vocab;
}

// "a b" strings (readable by every tokenizers version) unless a piece holds a space, which needs the
// [a, b] pair form of tokenizers >= 0.20.
json merges_json(const std::vector<std::pair<std::string, std::string>>& merges) {
  const bool has_space = std::any_of(merges.begin(), merges.end(), [](const auto& m) {
    return m.first.find(' ') != std::string::npos || m.second.find(' ') != std::string::npos;
  });
  json out = json::array();
  for (const auto& [l, r] : merges) {
    if (has_space) out.push_back(json::array({l, r}));
    else out.push_back(l + " " + r);
  }
  return out;
}

Status check_ids(const TokenizerData& t) {
  if (t.tokens.empty()) return invalid_argument("tokenizer export: the vocabulary is empty");
  if (!t.token_types.empty() && t.token_types.size() != t.tokens.size())
    return invalid_argument(fmt::format("tokenizer export: {} token types for {} tokens", t.token_types.size(), t.tokens.size()));
  const std::pair<const char*, int64_t> ids[] = {{"bos", t.bos_id}, {"eos", t.eos_id}, {"unk", t.unk_id}, {"pad", t.pad_id}};
  for (const auto& [what, id] : ids)
    if (id >= int64_t(t.tokens.size()))
      return invalid_argument(fmt::format("tokenizer export: {} id {} is outside the vocabulary of {}", what, id, t.tokens.size()));
  return Status::ok();
}

Expected<json> sentencepiece_json(const TokenizerData& t) {
  if (t.scores.size() != t.tokens.size())
    return invalid_argument(fmt::format("tokenizer export: SentencePiece vocabulary has {} scores for {} tokens",
                                        t.scores.size(), t.tokens.size()));
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added_tokens_of(t);
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", kSpaceMark}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceMark}}}}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = template_processor(t);
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", kSpaceMark}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", in_range(t, t.unk_id) ? json(t.tokens[size_t(t.unk_id)]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", vocab_of(t)},
                {"merges", merges_json(sentencepiece_merges(t.tokens, t.scores))}};
  return j;
}

json byte_level(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", trim_offsets}, {"use_regex", use_regex}};
}

json split_regex(const char* regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}

Expected<json> gpt2_json(const TokenizerData& t) {
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(t.merges.size());
  for (size_t i = 0; i < t.merges.size(); ++i) {
    const std::string& m = t.merges[i];
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos)
      return invalid_argument(fmt::format("tokenizer export: merge {} \"{}\" is not two pieces separated by one space", i, m));
    merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added_tokens_of(t);
  j["normalizer"] = nullptr;
  const std::string& pre = t.pre;
  bool ignore_merges = false;
  if (pre == "llama-bpe" || pre == "llama3") {
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split_regex(kLlama3Regex), byte_level(false, true, false)}}};
    ignore_merges = true;  // Llama 3's tokenizer.json sets it: whole words in the vocab win
  } else if (pre == "qwen2") {
    j["normalizer"] = {{"type", "NFC"}};
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split_regex(kQwen2Regex), byte_level(false, true, false)}}};
  } else if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell") {
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(false, true, true)}}};
  } else {
    j["pre_tokenizer"] = byte_level(false, true, true);  // "gpt2" and anything we do not know
  }
  if (t.add_bos || t.add_eos)
    j["post_processor"] = {{"type", "Sequence"}, {"processors", {byte_level(true, false, true), template_processor(t)}}};
  else
    j["post_processor"] = byte_level(true, false, true);
  j["decoder"] = byte_level(true, true, true);
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", ignore_merges},
                {"vocab", vocab_of(t)},
                {"merges", merges_json(merges)}};
  return j;
}

}  // namespace

std::string gguf_pre_regex(const std::string& pre) {
  if (pre == "gpt2" || pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell") return kGpt2Regex;
  if (pre == "llama-bpe" || pre == "llama3") return kLlama3Regex;
  if (pre == "qwen2") return kQwen2Regex;
  return "";
}

std::vector<std::pair<std::string, std::string>> sentencepiece_merges(const std::vector<std::string>& tokens,
                                                                      const std::vector<float>& scores) {
  std::unordered_map<std::string, int64_t> id_of;
  id_of.reserve(tokens.size() * 2);
  for (size_t i = 0; i < tokens.size(); ++i) id_of.emplace(tokens[i], int64_t(i));

  struct Merge {
    int64_t left, right;
    float score;
    size_t left_len, right_len;  // code points
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& piece = tokens[i];
    if (id_of.at(piece) != int64_t(i)) continue;  // a duplicate: its first occurrence already counted
    const std::vector<size_t> starts = code_point_starts(piece);
    std::vector<Merge> local;
    for (size_t k = 1; k < starts.size(); ++k) {
      auto l = id_of.find(piece.substr(0, starts[k]));
      auto r = id_of.find(piece.substr(starts[k]));
      if (l == id_of.end() || r == id_of.end()) continue;
      local.push_back({l->second, r->second, scores[i], k, starts.size() - k});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return std::pair(a.left, a.right) < std::pair(b.left, b.right); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_len != b.left_len) return a.left_len > b.left_len;
    return a.right_len > b.right_len;
  });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const Merge& m : merges) out.emplace_back(tokens[size_t(m.left)], tokens[size_t(m.right)]);
  return out;
}

Expected<json> tokenizer_json_from(const TokenizerData& tok) {
  switch (tok.kind) {
    case TokenizerData::Kind::kNone:
      return not_found("tokenizer export: the model came without a tokenizer");
    case TokenizerData::Kind::kHfJson: {
      std::ifstream in(tok.hf_tokenizer_json);
      if (!in) return not_found(fmt::format("{}: cannot open tokenizer.json", tok.hf_tokenizer_json.string()));
      try {
        return json::parse(in);
      } catch (const json::exception& e) {
        return corrupt(fmt::format("{}: invalid JSON: {}", tok.hf_tokenizer_json.string(), e.what()));
      }
    }
    case TokenizerData::Kind::kGpt2Bpe:
      RTNQ_RETURN_IF_ERROR(check_ids(tok));
      return gpt2_json(tok);
    case TokenizerData::Kind::kSentencePiece:
      RTNQ_RETURN_IF_ERROR(check_ids(tok));
      return sentencepiece_json(tok);
  }
  return invalid_argument("tokenizer export: unknown tokenizer kind");
}

json tokenizer_config_from(const TokenizerData& tok, int64_t model_max_length) {
  json c = json::object();
  c["add_bos_token"] = tok.add_bos;
  c["add_eos_token"] = tok.add_eos;
  c["clean_up_tokenization_spaces"] = false;
  auto token_or_null = [&](int64_t id) { return in_range(tok, id) ? json(tok.tokens[size_t(id)]) : json(nullptr); };
  c["bos_token"] = token_or_null(tok.bos_id);
  c["eos_token"] = token_or_null(tok.eos_id);
  c["unk_token"] = token_or_null(tok.unk_id);
  c["pad_token"] = token_or_null(tok.pad_id);
  // LlamaTokenizerFast keeps the Llama post-processor in step with add_bos/add_eos; for byte-level
  // BPE the plain fast class loads tokenizer.json exactly as written.
  c["tokenizer_class"] = tok.kind == TokenizerData::Kind::kSentencePiece ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast";
  if (tok.kind == TokenizerData::Kind::kSentencePiece) c["legacy"] = true;  // matches the Prepend normalizer we write
  if (model_max_length > 0) c["model_max_length"] = model_max_length;
  if (!tok.chat_template.empty()) c["chat_template"] = tok.chat_template;
  if (tok.kind == TokenizerData::Kind::kGpt2Bpe || tok.kind == TokenizerData::Kind::kSentencePiece) {
    json decoder = json::object();
    for (const json& a : added_tokens_of(tok)) {
      json entry = a;
      const std::string id = std::to_string(a["id"].get<int64_t>());
      entry.erase("id");
      decoder[id] = entry;
    }
    c["added_tokens_decoder"] = decoder;
  }
  return c;
}

}  // namespace rtnq
