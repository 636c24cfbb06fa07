// Tokenizers: the llama2.c/SentencePiece encoder against a direct transcription of run.c's
// quadratic merge loop on random TinyStories excerpts; byte-level BPE on hand-made vocabularies
// (pre-tokenizer boundaries, merge ranks, specials); and decode(encode(x)) == x over WikiText-2
// with the real SmolLM2 GGUF vocabulary.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <unordered_map>

#include "engine/tokenizer.h"
#include "test-util.h"

namespace rtnq {
namespace {

using test::models_dir;
using test::read_bytes;
using test::shared_dir;


// run.c's encode(), restated: per-character lookup with byte fallback, then rescan for the best
// pair every round. Works on the '▁' spelling the loader serves.
std::vector<int32_t> run_c_encode(const TokenizerData& d, const std::string& text) {
  std::unordered_map<std::string, int32_t> idx;
  for (size_t i = 0; i < d.tokens.size(); ++i)
    if (int64_t(i) != d.bos_id && int64_t(i) != d.eos_id) idx.emplace(d.tokens[i], int32_t(i));
  auto lookup = [&](const std::string& s) { auto it = idx.find(s); return it == idx.end() ? -1 : it->second; };
  std::string s;
  for (char c : text) s += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  std::vector<int32_t> toks{int32_t(d.bos_id)};
  if (text.empty()) return toks;
  toks.push_back(lookup("\xE2\x96\x81"));
  for (size_t i = 0; i < s.size();) {
    size_t n = 1;
    while (i + n < s.size() && (uint8_t(s[i + n]) & 0xC0) == 0x80 && n < 4) ++n;
    const int id = lookup(s.substr(i, n));
    if (id >= 0) {
      toks.push_back(id);
    } else {
      for (size_t k = 0; k < n; ++k) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", uint8_t(s[i + k]));
        toks.push_back(lookup(buf));
      }
    }
    i += n;
  }
  for (;;) {
    float best = -1e10f;
    int best_id = -1;
    size_t best_i = 0;
    for (size_t i = 1; i + 1 < toks.size(); ++i) {
      const int id = lookup(d.tokens[size_t(toks[i])] + d.tokens[size_t(toks[i + 1])]);
      if (id >= 0 && d.scores[size_t(id)] > best) best = d.scores[size_t(id)], best_id = id, best_i = i;
    }
    if (best_id < 0) break;
    toks[best_i] = best_id;
    toks.erase(toks.begin() + std::ptrdiff_t(best_i) + 1);
  }
  return toks;
}

TEST(Tokenizer, SentencePieceMatchesRunCOnTinyStories) {
  auto m = load_model(shared_dir() / "models" / "stories260K" / "stories260K.bin");
  ASSERT_TRUE(m) << m.status().to_string();
  auto tok = make_tokenizer(m->tokenizer);
  ASSERT_TRUE(tok) << tok.status().to_string();
  ASSERT_TRUE(test::shared_file_exists(shared_dir() / "data" / "tinystories" / "TinyStories-valid-head.txt"));
  const std::string text = read_bytes(shared_dir() / "data" / "tinystories" / "TinyStories-valid-head.txt");
  ASSERT_GT(text.size(), 100000u);
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 gen(seed);
  for (int trial = 0; trial < 40; ++trial) {
    const size_t at = std::uniform_int_distribution<size_t>(0, text.size() - 400)(gen);
    const size_t len = std::uniform_int_distribution<size_t>(0, 300)(gen);
    std::string piece = text.substr(at, len);
    if (trial == 0) piece = "Héllo wörld — ünïcode ☃ 日本 and 🙂 emoji";  // byte fallback paths
    const auto got = (*tok)->encode(piece, true);
    EXPECT_EQ(got, run_c_encode(m->tokenizer, piece)) << "text: " << piece;
    EXPECT_EQ((*tok)->decode(got), piece);
  }
  // The whole file round-trips (and the O(n log n) merge finishes quickly on it).
  const auto all = (*tok)->encode(text, true);
  EXPECT_GT(all.size(), text.size() / 8);
  EXPECT_EQ((*tok)->decode(all), text);
}

// A tiny GPT-2 style vocabulary: every byte of the alphabet used plus a few merges.
ByteBpeConfig tiny_config(std::vector<std::string> regexes) {
  ByteBpeConfig c;
  for (char ch : std::string("abcdefghijklmnopqrstuvwxyz0123456789!.")) c.tokens.emplace_back(1, ch);
  c.tokens.push_back("\xC4\xA0");  // 'Ġ' = byte 0x20 (space) in GPT-2's alphabet
  c.tokens.push_back("\xC4\x8A");  // 'Ċ' = byte 0x0A
  for (const char* t : {"lo", "Ġw", "Ġwo", "or", "ld", "12", "oĠ", "<|end|>"}) c.tokens.push_back(t);
  c.merges = {"l o", "Ġ w", "Ġw o", "o r", "l d", "1 2", "o Ġ"};
  c.special_ids = {int32_t(c.tokens.size() - 1)};
  c.control_ids = c.special_ids;
  c.split_regexes = std::move(regexes);
  return c;
}

std::vector<std::string> spell(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.piece(id));
  return out;
}

TEST(Tokenizer, ByteBpeRespectsPreTokenizerAndRanks) {
  auto t = make_byte_bpe_tokenizer(tiny_config(pre_tokenizer_regexes("smollm")));
  ASSERT_TRUE(t) << t.status().to_string();
  // "lo wo": the regex makes pieces "lo" and " wo", so the rank-7 merge "o Ġ" across the boundary
  // never happens; inside " wo", "Ġ w" (rank 1) beats "o r"-style later ranks.
  EXPECT_EQ(spell(**t, (*t)->encode("lo wo", false)), (std::vector<std::string>{"lo", "Ġwo"}));
  // Digits are split one by one before the GPT-2 regex (smollm), so "12" never merges...
  EXPECT_EQ(spell(**t, (*t)->encode("a12", false)), (std::vector<std::string>{"a", "1", "2"}));
  // ...but under plain gpt2 rules " ?\p{N}+" keeps them together.
  auto g = make_byte_bpe_tokenizer(tiny_config(pre_tokenizer_regexes("gpt2")));
  ASSERT_TRUE(g);
  EXPECT_EQ(spell(**g, (*g)->encode("a12", false)), (std::vector<std::string>{"a", "12"}));
  // Without any pre-tokenizer, the cross-word merge does apply.
  auto raw = make_byte_bpe_tokenizer(tiny_config({}));
  ASSERT_TRUE(raw);
  EXPECT_EQ(spell(**raw, (*raw)->encode("o ", false)), (std::vector<std::string>{"oĠ"}));
  EXPECT_EQ(spell(**t, (*t)->encode("o ", false)), (std::vector<std::string>{"o", "Ġ"}));
  // Lower rank wins: "Ġ w" (rank 1) is merged before "o Ġ" (rank 6) could apply.
  EXPECT_EQ(spell(**raw, (*raw)->encode("o w", false)), (std::vector<std::string>{"o", "Ġw"}));
  // Specials are cut out literally when parsing specials, spelled as text otherwise.
  auto with = (*t)->encode("ab<|end|>c", false, true);
  EXPECT_EQ(spell(**t, with), (std::vector<std::string>{"a", "b", "<|end|>", "c"}));
  EXPECT_EQ((*t)->decode(with), "abc");  // control tokens print nothing in decode()
  auto without = (*t)->encode("a!", false, false);
  EXPECT_EQ(spell(**t, without), (std::vector<std::string>{"a", "!"}));
  EXPECT_EQ((*t)->decode((*t)->encode("hello world\n12 lo.", false)), "hello world\n12 lo.");
}

TEST(Tokenizer, BadRegexIsAStatus) {
  auto t = make_byte_bpe_tokenizer(tiny_config({"(unclosed"}));
  ASSERT_FALSE(t);
  EXPECT_NE(t.status().message().find("(unclosed"), std::string::npos) << t.status().message();
}

TEST(Tokenizer, SmolLM2RoundTripsAllOfWikiText2) {
  const auto gguf = models_dir() / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << "no " << gguf << " (scripts/fetch-models.sh makes it)";
  auto m = load_model(gguf);
  ASSERT_TRUE(m) << m.status().to_string();
  ASSERT_EQ(m->tokenizer.kind, TokenizerData::Kind::kGpt2Bpe);
  auto tok = make_tokenizer(m->tokenizer);
  ASSERT_TRUE(tok) << tok.status().to_string();
  ASSERT_TRUE(test::shared_file_exists(shared_dir() / "data" / "wikitext-2-raw" / "wiki.test.raw"));
  const std::string text = read_bytes(shared_dir() / "data" / "wikitext-2-raw" / "wiki.test.raw");
  ASSERT_EQ(text.size(), 1290590u);
  const auto ids = (*tok)->encode(text, false, false);
  // English BPE with a 49k vocabulary: roughly 4 bytes a token.
  EXPECT_GT(ids.size(), text.size() / 8);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ((*tok)->decode(ids), text);
  // Known pieces of the SmolLM2 vocabulary: a common word with its leading space is one token,
  // and digits are split one per token.
  const auto the = (*tok)->encode(" the", false);
  ASSERT_EQ(the.size(), 1u);
  EXPECT_EQ((*tok)->piece(the[0]), "Ġthe");
  EXPECT_EQ((*tok)->encode("2024", false).size(), 4u);
  const auto chat = (*tok)->encode("<|im_start|>user", false, true);
  ASSERT_FALSE(chat.empty());
  EXPECT_EQ((*tok)->piece(chat[0]), "<|im_start|>");
}

}  // namespace
}  // namespace rtnq
