// llama2.c tokenizer files (tok512.bin, tokenizer.bin): the vocabulary of a SentencePiece BPE model as
// karpathy/llama2.c's tokenizer.py exports it.
//
// Layout: int32 max_token_length, then for each token: float32 score, int32 byte length, the bytes
// (no terminator). The file does not store the token count; llama2.c takes it from the checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "rtnq/model.h"

namespace rtnq {

// GGUF token types (llama.cpp's llama_token_type), used for TokenizerData::token_types everywhere.
inline constexpr int32_t kTokenNormal = 1;
inline constexpr int32_t kTokenUnknown = 2;
inline constexpr int32_t kTokenControl = 3;
inline constexpr int32_t kTokenUserDefined = 4;
inline constexpr int32_t kTokenUnused = 5;
inline constexpr int32_t kTokenByte = 6;

// Reads a llama2.c tokenizer into a kSentencePiece TokenizerData (bos 1, eos 2, unk 0).
// `expected_vocab` > 0: exactly that many tokens are read (as llama2.c does) and bytes left over are
// an error (the tokenizer belongs to another model); <= 0: tokens are read up to the end of the file.
//
// The exporter wrote pieces with '▁' turned into ' ' and BOS/EOS as "\n<s>\n" / "\n</s>\n"; both are
// undone here so that `tokens` hold real SentencePiece pieces, the same form a GGUF "llama" vocabulary
// has. The mapping is lossless: SentencePiece pieces never contain a raw space.
Expected<TokenizerData> load_llama2c_tokenizer(const std::filesystem::path& file, int64_t expected_vocab = -1);

// Parses "<0xAB>" (SentencePiece byte-fallback piece); returns -1 when `piece` is not one.
int byte_token_value(const std::string& piece);

}  // namespace rtnq
