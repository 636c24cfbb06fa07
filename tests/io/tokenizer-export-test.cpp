// tokenizer.json export: structure of the Llama (SentencePiece) and byte-level BPE forms, hand-checked
// merge derivation, and — on stories260K's real tok512.bin — that BPE with the derived merges splits
// text exactly as llama2.c's score-greedy encoder does.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "io/llama2c-tokenizer.h"
#include "io/tokenizer-export.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace rtnq;
using nlohmann::json;

namespace {

const std::string kMark = "\xE2\x96\x81";

using rtnq::test::models_dir;
using rtnq::test::shared_dir;

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// Code points in the vocabulary stay whole; others fall back to their bytes' <0xXX> pieces.
std::vector<std::string> initial_symbols(const std::string& text, const std::unordered_map<std::string, int>& vocab) {
  std::vector<std::string> syms;
  for (const std::string& ch : utf8_chars(text)) {
    if (vocab.count(ch)) {
      syms.push_back(ch);
      continue;
    }
    for (unsigned char b : ch) syms.push_back(fmt::format("<0x{:02X}>", b));
  }
  return syms;
}

// llama2.c's encode(): repeatedly merge the adjacent pair whose concatenation is the highest-scoring
// vocabulary piece (leftmost on ties).
std::vector<std::string> encode_greedy_by_score(const std::string& text, const std::unordered_map<std::string, int>& vocab,
                                                const std::vector<float>& scores) {
  std::vector<std::string> syms = initial_symbols(text, vocab);
  while (true) {
    float best = -1e30f;
    int best_i = -1;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = vocab.find(syms[i] + syms[i + 1]);
      if (it != vocab.end() && scores[size_t(it->second)] > best) {
        best = scores[size_t(it->second)];
        best_i = int(i);
      }
    }
    if (best_i < 0) break;
    syms[size_t(best_i)] += syms[size_t(best_i) + 1];
    syms.erase(syms.begin() + best_i + 1);
  }
  return syms;
}

// BPE as `tokenizers` runs it: repeatedly apply the lowest-ranked merge present (leftmost on ties).
std::vector<std::string> encode_by_merges(const std::string& text, const std::unordered_map<std::string, int>& vocab,
                                          const std::map<std::pair<std::string, std::string>, size_t>& rank) {
  std::vector<std::string> syms = initial_symbols(text, vocab);
  while (true) {
    size_t best = SIZE_MAX;
    int best_i = -1;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = rank.find({syms[i], syms[i + 1]});
      if (it != rank.end() && it->second < best) {
        best = it->second;
        best_i = int(i);
      }
    }
    if (best_i < 0) break;
    syms[size_t(best_i)] += syms[size_t(best_i) + 1];
    syms.erase(syms.begin() + best_i + 1);
  }
  return syms;
}

std::pair<std::string, std::string> split_merge(const json& m) {
  if (m.is_array()) return {m[0].get<std::string>(), m[1].get<std::string>()};
  const std::string s = m.get<std::string>();
  const size_t sp = s.find(' ');
  return {s.substr(0, sp), s.substr(sp + 1)};
}

std::string replace_spaces(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ') out += kMark;
    else out += c;
  }
  return out;
}

TokenizerData tiny_sentencepiece() {
  TokenizerData t;
  t.kind = TokenizerData::Kind::kSentencePiece;
  t.tokens = {"<unk>", "<s>", "</s>", "a", "b", "c", "ab", "bc", "abc"};
  t.scores = {0, 0, 0, -1, -2, -3, -4, -5, -6};
  t.token_types = {kTokenUnknown, kTokenControl, kTokenControl, 1, 1, 1, 1, 1, 1};
  t.unk_id = 0;
  t.bos_id = 1;
  t.eos_id = 2;
  return t;
}

TEST(SentencepieceMerges, HandComputedOrder) {
  const TokenizerData t = tiny_sentencepiece();
  const auto merges = sentencepiece_merges(t.tokens, t.scores);
  // "abc" (score -6) splits two ways; the longer left piece ranks first.
  const std::vector<std::pair<std::string, std::string>> expected = {{"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "bc"}};
  EXPECT_EQ(merges, expected);
}

TEST(TokenizerJson, SentencePieceStructure) {
  TokenizerData t = tiny_sentencepiece();
  t.chat_template = "{{ messages }}";
  auto j = tokenizer_json_from(t);
  ASSERT_TRUE(j) << j.status().to_string();
  const json& m = (*j)["model"];
  EXPECT_EQ(m["type"], "BPE");
  EXPECT_EQ(m["byte_fallback"], true);
  EXPECT_EQ(m["fuse_unk"], true);
  EXPECT_EQ(m["unk_token"], "<unk>");
  EXPECT_EQ(m["vocab"].size(), t.tokens.size());
  EXPECT_EQ(m["vocab"]["abc"], 8);
  EXPECT_EQ(m["merges"], json::array({"a b", "b c", "ab c", "a bc"}));
  const json& added = (*j)["added_tokens"];
  ASSERT_EQ(added.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(added[i]["id"], i);
    EXPECT_EQ(added[i]["content"], t.tokens[i]);
    EXPECT_EQ(added[i]["special"], true);
  }
  EXPECT_EQ((*j)["normalizer"]["normalizers"][0]["type"], "Prepend");
  EXPECT_EQ((*j)["normalizer"]["normalizers"][0]["prepend"], kMark);
  EXPECT_EQ((*j)["normalizer"]["normalizers"][1]["pattern"]["String"], " ");
  EXPECT_TRUE((*j)["pre_tokenizer"].is_null());
  const json& dec = (*j)["decoder"]["decoders"];
  ASSERT_EQ(dec.size(), 4u);
  EXPECT_EQ(dec[0]["type"], "Replace");
  EXPECT_EQ(dec[1]["type"], "ByteFallback");
  EXPECT_EQ(dec[2]["type"], "Fuse");
  EXPECT_EQ(dec[3]["type"], "Strip");
  EXPECT_EQ(dec[3]["start"], 1);
  const json& post = (*j)["post_processor"];
  EXPECT_EQ(post["type"], "TemplateProcessing");
  EXPECT_EQ(post["single"][0]["SpecialToken"]["id"], "<s>");
  EXPECT_EQ(post["single"][1]["Sequence"]["id"], "A");
  EXPECT_EQ(post["single"].size(), 2u);
  EXPECT_EQ(post["pair"].size(), 4u);
  EXPECT_EQ(post["special_tokens"]["<s>"]["ids"], json::array({1}));

  t.add_eos = true;
  j = tokenizer_json_from(t);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["post_processor"]["single"].size(), 3u);
  EXPECT_EQ((*j)["post_processor"]["single"][2]["SpecialToken"]["id"], "</s>");

  const json cfg = tokenizer_config_from(t, 4096);
  EXPECT_EQ(cfg["bos_token"], "<s>");
  EXPECT_EQ(cfg["eos_token"], "</s>");
  EXPECT_EQ(cfg["unk_token"], "<unk>");
  EXPECT_TRUE(cfg["pad_token"].is_null());
  EXPECT_EQ(cfg["add_bos_token"], true);
  EXPECT_EQ(cfg["add_eos_token"], true);
  EXPECT_EQ(cfg["model_max_length"], 4096);
  EXPECT_EQ(cfg["chat_template"], "{{ messages }}");
  EXPECT_EQ(cfg["tokenizer_class"], "LlamaTokenizerFast");
  EXPECT_EQ(cfg["added_tokens_decoder"]["1"]["content"], "<s>");
}

TEST(TokenizerJson, Gpt2Structure) {
  TokenizerData t;
  t.kind = TokenizerData::Kind::kGpt2Bpe;
  t.tokens = {"<|endoftext|>", "<|im_start|>", "a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "ab", "<tool>"};
  t.token_types = {kTokenControl, kTokenControl, 1, 1, 1, 1, 1, kTokenUserDefined};
  t.merges = {"a b", "\xC4\xA0 ab"};
  t.pre = "smollm";
  t.bos_id = 1;
  t.eos_id = 0;
  t.add_bos = false;
  auto j = tokenizer_json_from(t);
  ASSERT_TRUE(j) << j.status().to_string();
  const json& m = (*j)["model"];
  EXPECT_EQ(m["type"], "BPE");
  EXPECT_EQ(m["byte_fallback"], false);
  EXPECT_TRUE(m["unk_token"].is_null());
  EXPECT_EQ(m["vocab"].size(), t.tokens.size());
  EXPECT_EQ(m["merges"], json::array({"a b", "\xC4\xA0 ab"}));
  const json& pre = (*j)["pre_tokenizer"];
  EXPECT_EQ(pre["type"], "Sequence");
  EXPECT_EQ(pre["pretokenizers"][0]["type"], "Digits");
  EXPECT_EQ(pre["pretokenizers"][0]["individual_digits"], true);
  EXPECT_EQ(pre["pretokenizers"][1]["type"], "ByteLevel");
  EXPECT_EQ(pre["pretokenizers"][1]["use_regex"], true);
  EXPECT_EQ((*j)["decoder"]["type"], "ByteLevel");
  EXPECT_EQ((*j)["post_processor"]["type"], "ByteLevel");
  const json& added = (*j)["added_tokens"];
  ASSERT_EQ(added.size(), 3u);
  EXPECT_EQ(added[0]["content"], "<|endoftext|>");
  EXPECT_EQ(added[0]["special"], true);
  EXPECT_EQ(added[2]["content"], "<tool>");
  EXPECT_EQ(added[2]["special"], false);

  t.pre = "llama-bpe";
  t.add_bos = true;
  j = tokenizer_json_from(t);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
  EXPECT_EQ((*j)["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"], gguf_pre_regex("llama-bpe"));
  EXPECT_EQ((*j)["pre_tokenizer"]["pretokenizers"][1]["use_regex"], false);
  EXPECT_EQ((*j)["model"]["ignore_merges"], true);
  EXPECT_EQ((*j)["post_processor"]["processors"][1]["single"][0]["SpecialToken"]["id"], "<|im_start|>");
  EXPECT_NE(gguf_pre_regex("qwen2"), gguf_pre_regex("llama-bpe"));
  EXPECT_EQ(gguf_pre_regex("no-such-pre"), "");

  const json cfg = tokenizer_config_from(t);
  EXPECT_EQ(cfg["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(cfg["eos_token"], "<|endoftext|>");
  EXPECT_FALSE(cfg.contains("model_max_length"));

  t.merges.push_back("nospace");
  auto bad = tokenizer_json_from(t);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("nospace"), std::string::npos);
}

TEST(TokenizerJson, RefusesWhatCannotBeWritten) {
  TokenizerData none;
  EXPECT_FALSE(tokenizer_json_from(none));
  TokenizerData t = tiny_sentencepiece();
  t.scores.pop_back();
  EXPECT_FALSE(tokenizer_json_from(t));
  t = tiny_sentencepiece();
  t.eos_id = 99;
  auto bad = tokenizer_json_from(t);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("eos id 99"), std::string::npos) << bad.status().message();

  // kHfJson: the file itself, or a clear error.
  const rtnq::test::TempDir dir("rtnq-l2c-tok");
  TokenizerData hf;
  hf.kind = TokenizerData::Kind::kHfJson;
  hf.hf_tokenizer_json = dir.path() / "tokenizer.json";
  std::ofstream(hf.hf_tokenizer_json) << R"({"version": "1.0", "model": {"type": "BPE"}})";
  auto ok = tokenizer_json_from(hf);
  ASSERT_TRUE(ok) << ok.status().to_string();
  EXPECT_EQ((*ok)["model"]["type"], "BPE");
  std::ofstream(hf.hf_tokenizer_json) << R"({"version": )";
  bad = tokenizer_json_from(hf);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("tokenizer.json"), std::string::npos);
}

// Random SentencePiece-like vocabularies: every derived merge produces a vocabulary piece, and ranks
// follow the merged piece's score.
TEST(SentencepieceMerges, RandomVocabulariesAreConsistent) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const std::vector<std::string> alphabet = {"a", "b", "c", kMark, "\xC3\xA9"};
  std::vector<std::string> tokens = alphabet;
  std::unordered_map<std::string, int> seen;
  for (size_t i = 0; i < tokens.size(); ++i) seen[tokens[i]] = int(i);
  std::uniform_int_distribution<size_t> pick(0, 0);
  while (tokens.size() < 60) {
    const size_t n = tokens.size();
    const std::string cand = tokens[std::uniform_int_distribution<size_t>(0, n - 1)(rng)] +
                             tokens[std::uniform_int_distribution<size_t>(0, n - 1)(rng)];
    if (seen.count(cand)) continue;
    seen[cand] = int(tokens.size());
    tokens.push_back(cand);
  }
  std::vector<float> scores(tokens.size());
  for (auto& s : scores) s = -float(std::uniform_int_distribution<int>(0, 20)(rng));  // ties on purpose
  const auto merges = sentencepiece_merges(tokens, scores);
  ASSERT_FALSE(merges.empty());
  float prev = 1e30f;
  for (const auto& [l, r] : merges) {
    auto it = seen.find(l + r);
    ASSERT_NE(it, seen.end()) << l << " + " << r;
    EXPECT_LE(scores[size_t(it->second)], prev);
    prev = scores[size_t(it->second)];
  }
  // Every multi-character piece built above is reachable by at least one merge.
  for (size_t i = alphabet.size(); i < tokens.size(); ++i) {
    bool found = false;
    for (const auto& [l, r] : merges) found |= (l + r == tokens[i]);
    EXPECT_TRUE(found) << tokens[i];
  }
}

TEST(TokenizerJson, Stories260KMergesReproduceLlama2cEncoding) {
  const fs::path tok_file = models_dir() / "stories260K/tok512.bin";
  if (!fs::exists(tok_file)) GTEST_SKIP() << tok_file << " missing (run scripts/fetch-models.sh)";
  auto tok = load_llama2c_tokenizer(tok_file, 512);
  ASSERT_TRUE(tok) << tok.status().to_string();
  auto j = tokenizer_json_from(*tok);
  ASSERT_TRUE(j) << j.status().to_string();
  const json& model = (*j)["model"];
  ASSERT_EQ(model["vocab"].size(), 512u);
  EXPECT_EQ(model["vocab"]["<0x41>"], 3 + 0x41);
  EXPECT_EQ((*j)["added_tokens"].size(), 3u);

  std::unordered_map<std::string, int> vocab;
  for (size_t i = 0; i < tok->tokens.size(); ++i) vocab.emplace(tok->tokens[i], int(i));
  std::map<std::pair<std::string, std::string>, size_t> rank;
  const json& merges = model["merges"];
  // SentencePiece BPE builds every multi-character piece from two others: each needs a merge.
  size_t multi_char = 0;
  for (size_t i = 0; i < tok->tokens.size(); ++i)
    if (tok->token_types[i] == kTokenNormal && utf8_chars(tok->tokens[i]).size() > 1) ++multi_char;
  ASSERT_GT(multi_char, 100u);
  ASSERT_GE(merges.size(), multi_char);
  float prev = 1e30f;
  for (size_t i = 0; i < merges.size(); ++i) {
    auto lr = split_merge(merges[i]);
    auto it = vocab.find(lr.first + lr.second);
    ASSERT_NE(it, vocab.end()) << merges[i];
    EXPECT_LE(tok->scores[size_t(it->second)], prev) << "merge " << i << " out of score order";
    prev = tok->scores[size_t(it->second)];
    rank.emplace(lr, i);
  }
  for (size_t i = 0; i < tok->tokens.size(); ++i) {
    if (tok->token_types[i] != kTokenNormal || utf8_chars(tok->tokens[i]).size() < 2) continue;
    bool found = false;
    for (const auto& [lr, r] : rank) found |= (lr.first + lr.second == tok->tokens[i]);
    EXPECT_TRUE(found) << "no merge makes " << tok->tokens[i];
  }

  // Sample text: lines of TinyStories (the model's domain) plus random strings with non-ASCII bytes.
  std::vector<std::string> samples = {"Once upon a time", "Lily and Ben went to the park.", "hello world",
                                      "The cat sat on the mat", "naïve café — ünïcødé"};
  ASSERT_TRUE(rtnq::test::shared_file_exists(shared_dir() / "data/tinystories/TinyStories-valid-head.txt"));
  std::ifstream stories(shared_dir() / "data/tinystories/TinyStories-valid-head.txt");
  std::string line;
  while (samples.size() < 400 && std::getline(stories, line))
    if (!line.empty() && line.find("<|endoftext|>") == std::string::npos) samples.push_back(line);
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const std::vector<std::string> pieces = {"a", "e", "th", " ", "ing", "z", "Q", "é", "日", "\t", "!", "3", "ou", "he"};
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const int n = std::uniform_int_distribution<int>(1, 25)(rng);
    for (int k = 0; k < n; ++k) s += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
    samples.push_back(s);
  }
  size_t total_tokens = 0;
  for (const std::string& text : samples) {
    // The Llama normalizer: prepend '▁', spaces to '▁' (llama2.c's dummy prefix does the same).
    const std::string norm = kMark + replace_spaces(text);
    const auto greedy = encode_greedy_by_score(norm, vocab, tok->scores);
    const auto bpe = encode_by_merges(norm, vocab, rank);
    EXPECT_EQ(greedy, bpe) << "text: " << text;
    total_tokens += greedy.size();
  }
  // Merging did happen: far fewer tokens than bytes.
  size_t total_bytes = 0;
  for (const auto& s : samples) total_bytes += s.size() + 1;
  EXPECT_LT(total_tokens * 2, total_bytes);
}

}  // namespace
