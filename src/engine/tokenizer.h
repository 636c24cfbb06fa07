// Text <-> token ids for the engine. Two algorithms cover the Llama family:
//   SentencePiece-style BPE over scores with byte fallback (llama2.c tok*.bin, GGUF "llama"), and
//   byte-level BPE over merge ranks with a regex pre-tokenizer (tokenizer.json, GGUF "gpt2").
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rtnq/model.h"
#include "rtnq/status.h"

namespace rtnq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // parse_special: literal spellings of special/added tokens ("<|im_start|>") become those tokens;
  // off, they are encoded as ordinary text (what perplexity over raw files wants).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = true) const = 0;
  // The bytes `token` adds to the output when it follows `prev` (-1: first token). SentencePiece
  // drops the leading space of the first piece after BOS, as llama2.c's decode() does.
  virtual std::string decode_token(int32_t prev, int32_t token) const = 0;
  // Whole sequence; BOS/EOS and other control tokens contribute nothing.
  std::string decode(std::span<const int32_t> tokens) const;

  int64_t vocab_size() const { return int64_t(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[size_t(id)]; }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  bool add_bos_default() const { return add_bos_; }
  bool is_control(int32_t id) const;

 protected:
  std::vector<std::string> pieces_;
  std::vector<uint8_t> control_;  // 1 for BOS/EOS/pad-like tokens that never print
  int32_t bos_ = -1, eos_ = -1;
  bool add_bos_ = true;
};

// Byte-level BPE description, independent of the file it came from.
struct ByteBpeConfig {
  std::vector<std::string> tokens;          // in GPT-2's byte-to-unicode spelling ("Ġthe")
  std::vector<std::string> merges;          // "a b", by rank
  std::vector<std::string> split_regexes;   // PCRE2 patterns applied in sequence
  std::vector<int32_t> special_ids;         // matched literally before pre-tokenization
  std::vector<int32_t> control_ids;         // never printed by decode()
  int32_t bos_id = -1, eos_id = -1;
  bool add_bos = false;
};

// The pre-tokenizer regexes llama.cpp associates with a GGUF `tokenizer.ggml.pre` value.
std::vector<std::string> pre_tokenizer_regexes(std::string_view pre);

Expected<std::unique_ptr<Tokenizer>> make_sentencepiece_tokenizer(const TokenizerData& data);
Expected<std::unique_ptr<Tokenizer>> make_byte_bpe_tokenizer(ByteBpeConfig config);
// Reads a Hugging Face tokenizer.json (BPE model with a ByteLevel pre-tokenizer/decoder).
Expected<ByteBpeConfig> byte_bpe_config_from_tokenizer_json(const std::filesystem::path& file);
// Whichever tokenizer `data` describes; errors name the file or the missing piece.
Expected<std::unique_ptr<Tokenizer>> make_tokenizer(const TokenizerData& data);

}  // namespace rtnq
