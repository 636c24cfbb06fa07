#include "io/llama2c-tokenizer.h"

#include <cstring>

#include <fmt/format.h>

#include "core/mapped-file.h"

namespace rtnq {

namespace {

// Longest token we believe in: llama2.c vocabularies stay far below; anything larger means the
// bytes are not a tokenizer (or not this format).
constexpr int32_t kMaxTokenBytes = 1 << 16;

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

}  // namespace

int byte_token_value(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

Expected<TokenizerData> load_llama2c_tokenizer(const std::filesystem::path& file, int64_t expected_vocab) {
  RTNQ_ASSIGN_OR_RETURN(auto mf, MappedFile::open(file));
  const std::string name = file.string();
  const uint8_t* p = mf->data();
  const size_t size = mf->size();
  size_t off = 0;
  auto read_i32 = [&](int32_t* v) {
    if (size - off < 4) return false;
    std::memcpy(v, p + off, 4);
    off += 4;
    return true;
  };

  int32_t max_len = 0;
  if (!read_i32(&max_len)) return corrupt(fmt::format("{}: expected a 4-byte max_token_length header, file has {} bytes", name, size));
  if (max_len <= 0 || max_len > kMaxTokenBytes)
    return corrupt(fmt::format("{}: max_token_length {} is not in [1, {}]; not a llama2.c tokenizer", name, max_len, kMaxTokenBytes));

  TokenizerData tok;
  tok.kind = TokenizerData::Kind::kSentencePiece;
  tok.unk_id = 0;
  tok.bos_id = 1;
  tok.eos_id = 2;
  tok.add_bos = true;
  tok.add_eos = false;
  while (expected_vocab > 0 ? int64_t(tok.tokens.size()) < expected_vocab : off < size) {
    const size_t index = tok.tokens.size();
    float score = 0;
    int32_t len = 0;
    if (size - off < 8)
      return corrupt(fmt::format("{}: truncated at token {} (byte offset {}): expected score and length, {} bytes left{}",
                                 name, index, off, size - off,
                                 expected_vocab > 0 ? fmt::format("; the model's vocab is {}", expected_vocab) : ""));
    std::memcpy(&score, p + off, 4);
    std::memcpy(&len, p + off + 4, 4);
    off += 8;
    if (len < 0 || len > max_len)
      return corrupt(fmt::format("{}: token {} has length {}, expected 0..{} (max_token_length)", name, index, len, max_len));
    if (size_t(len) > size - off)
      return corrupt(fmt::format("{}: truncated at token {}: its {} bytes run past the end of the file", name, index, len));
    std::string piece(reinterpret_cast<const char*>(p + off), size_t(len));
    off += size_t(len);
    tok.tokens.push_back(std::move(piece));
    tok.scores.push_back(score);
  }
  if (off != size)
    return corrupt(fmt::format("{}: {} bytes left after {} tokens; the tokenizer does not match a vocab of {}", name,
                               size - off, tok.tokens.size(), expected_vocab));
  if (tok.tokens.size() < 3)
    return corrupt(fmt::format("{}: only {} tokens; expected at least <unk>, <s>, </s>", name, tok.tokens.size()));

  tok.token_types.resize(tok.tokens.size(), kTokenNormal);
  for (size_t i = 0; i < tok.tokens.size(); ++i) {
    std::string& t = tok.tokens[i];
    if (i == size_t(tok.bos_id) && t == "\n<s>\n") t = "<s>";
    else if (i == size_t(tok.eos_id) && t == "\n</s>\n") t = "</s>";
    else t = replace_all(std::move(t), " ", "\xE2\x96\x81");  // back to '▁'
    if (i == size_t(tok.unk_id)) tok.token_types[i] = kTokenUnknown;
    else if (i == size_t(tok.bos_id) || i == size_t(tok.eos_id)) tok.token_types[i] = kTokenControl;
    else if (byte_token_value(t) >= 0) tok.token_types[i] = kTokenByte;
  }
  return tok;
}

}  // namespace rtnq
