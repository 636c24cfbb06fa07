// Byte-level BPE (GPT-2 family: SmolLM, Llama 3, Qwen2). Text is split into pieces by the
// pre-tokenizer regexes (PCRE2, Unicode classes and look-ahead), each piece's bytes are spelled in
// GPT-2's byte-to-unicode alphabet, and adjacent symbols merge by rank (lowest first, leftmost on
// ties) until no ranked pair is left. Literal special/added tokens are cut out first.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <limits>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/tokenizer.h"

namespace rtnq {
namespace {

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
}

size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decode one code point at s[i] (advancing i); invalid bytes come back as themselves + 0x110000.
uint32_t next_codepoint(std::string_view s, size_t& i) {
  const auto c = uint8_t(s[i]);
  const size_t n = utf8_len(c);
  if (n == 1 || i + n > s.size()) {
    ++i;
    return c < 0x80 ? c : 0x110000u + c;
  }
  uint32_t cp = c & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

struct Regex {
  pcre2_code* code = nullptr;
  pcre2_match_data* md = nullptr;
  ~Regex() {
    if (md) pcre2_match_data_free(md);
    if (code) pcre2_code_free(code);
  }
};

class ByteBpeTokenizer final : public Tokenizer {
 public:
  Status init(ByteBpeConfig cfg) {
    pieces_ = std::move(cfg.tokens);
    bos_ = cfg.bos_id;
    eos_ = cfg.eos_id;
    add_bos_ = cfg.add_bos;
    control_.assign(pieces_.size(), 0);
    for (int32_t id : cfg.control_ids) control_[size_t(id)] = 1;
    if (bos_ >= 0 && size_t(bos_) < control_.size()) control_[size_t(bos_)] = 1;
    if (eos_ >= 0 && size_t(eos_) < control_.size()) control_[size_t(eos_)] = 1;
    is_special_.assign(pieces_.size(), 0);
    for (int32_t id : cfg.special_ids) {
      is_special_[size_t(id)] = 1;
      if (!pieces_[size_t(id)].empty()) specials_.push_back(id);
    }
    for (size_t i = 0; i < pieces_.size(); ++i)
      if (!is_special_[i]) index_.emplace(pieces_[i], int32_t(i));
    for (size_t r = 0; r < cfg.merges.size(); ++r) ranks_.emplace(cfg.merges[r], int32_t(r));
    // GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the rest are shifted
    // to code points 256.. in byte order.
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + shifted++);
      byte_char_[size_t(b)].clear();
      append_utf8(byte_char_[size_t(b)], cp);
      reverse_map_.emplace(cp, uint8_t(b));
    }
    for (const auto& pattern : cfg.split_regexes) {
      int err = 0;
      PCRE2_SIZE off = 0;
      auto re = std::make_unique<Regex>();
      re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                               &off, nullptr);
      if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        return invalid_argument(fmt::format("pre-tokenizer regex '{}' at offset {}: {}", pattern, off,
                                            reinterpret_cast<const char*>(msg)));
      }
      pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);  // optional speed-up; interpreted if it fails
      regexes_.push_back(std::move(re));
    }
    return Status::ok();
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    std::vector<int32_t> out;
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    size_t pos = 0;
    while (pos < text.size()) {
      // Earliest (then longest) literal special token at or after pos.
      size_t best_at = std::string_view::npos, best_len = 0;
      int32_t best_id = -1;
      if (parse_special) {
        for (int32_t id : specials_) {
          const std::string& sp = pieces_[size_t(id)];
          const size_t at = text.find(sp, pos);
          if (at == std::string_view::npos) continue;
          if (at < best_at || (at == best_at && sp.size() > best_len)) best_at = at, best_len = sp.size(), best_id = id;
        }
      }
      const size_t end = best_id >= 0 ? best_at : text.size();
      if (end > pos) encode_plain(text.substr(pos, end - pos), out);
      if (best_id < 0) break;
      out.push_back(best_id);
      pos = best_at + best_len;
    }
    return out;
  }

  std::string decode_token(int32_t prev, int32_t token) const override {
    if (token < 0 || size_t(token) >= pieces_.size()) return {};
    const std::string& p = pieces_[size_t(token)];
    if (is_special_[size_t(token)]) return p;
    std::string out;
    for (size_t i = 0; i < p.size();) {
      const size_t start = i;
      const uint32_t cp = next_codepoint(p, i);
      auto it = reverse_map_.find(cp);
      if (it != reverse_map_.end()) out += char(it->second);
      else out.append(p, start, i - start);
    }
    return out;
  }

 private:
  // Pieces of `text` under the regex sequence: each regex splits every piece of the previous step
  // into its matches and the stretches between them.
  std::vector<std::string_view> pre_tokenize(std::string_view text) const {
    std::vector<std::string_view> pieces{text}, next;
    for (const auto& re : regexes_) {
      next.clear();
      pcre2_match_data* md = pcre2_match_data_create_from_pattern(re->code, nullptr);
      for (std::string_view p : pieces) {
        size_t at = 0;
        while (at < p.size()) {
          const int rc = pcre2_match(re->code, reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), at, 0, md, nullptr);
          if (rc < 0) break;  // no further match (or invalid UTF-8: the rest stays one piece)
          const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
          size_t s = ov[0], e = ov[1];
          if (e == s) {  // an empty match cannot split anything: step over one character
            at = s + utf8_len(uint8_t(p[s]));
            continue;
          }
          if (s > at) next.push_back(p.substr(at, s - at));
          next.push_back(p.substr(s, e - s));
          at = e;
        }
        if (at < p.size()) next.push_back(p.substr(at));
      }
      pcre2_match_data_free(md);
      pieces.swap(next);
    }
    return pieces;
  }

  void encode_plain(std::string_view text, std::vector<int32_t>& out) const {
    for (std::string_view piece : pre_tokenize(text)) {
      {
        std::lock_guard<std::mutex> lock(cache_mu_);
        auto it = cache_.find(std::string(piece));
        if (it != cache_.end()) {
          out.insert(out.end(), it->second.begin(), it->second.end());
          continue;
        }
      }
      std::vector<int32_t> ids = bpe(piece);
      out.insert(out.end(), ids.begin(), ids.end());
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (cache_.size() < 200000) cache_.emplace(std::string(piece), std::move(ids));
    }
  }

  std::vector<int32_t> bpe(std::string_view piece) const {
    std::vector<std::string> sym;
    for (unsigned char b : piece) sym.push_back(byte_char_[b]);
    std::string key;
    while (sym.size() > 1) {
      int32_t best_rank = std::numeric_limits<int32_t>::max();
      size_t best = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        key.assign(sym[i]).append(" ").append(sym[i + 1]);
        auto it = ranks_.find(key);
        if (it != ranks_.end() && it->second < best_rank) best_rank = it->second, best = i;
      }
      if (best_rank == std::numeric_limits<int32_t>::max()) break;
      sym[best] += sym[best + 1];
      sym.erase(sym.begin() + std::ptrdiff_t(best) + 1);
    }
    std::vector<int32_t> ids;
    for (const std::string& s : sym) {
      auto it = index_.find(s);
      if (it != index_.end()) {
        ids.push_back(it->second);
        continue;
      }
      // Not in the vocabulary (a vocabulary without every byte): emit the byte symbols we have.
      for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_len(uint8_t(s[i]));
        auto jt = index_.find(s.substr(i, n));
        if (jt != index_.end()) ids.push_back(jt->second);
        i += n;
      }
    }
    return ids;
  }

  std::unordered_map<std::string, int32_t> index_, ranks_;
  std::vector<uint8_t> is_special_;
  std::vector<int32_t> specials_;
  std::array<std::string, 256> byte_char_;
  std::unordered_map<uint32_t, uint8_t> reverse_map_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> make_byte_bpe_tokenizer(ByteBpeConfig config) {
  if (config.tokens.empty()) return invalid_argument("byte-level BPE tokenizer: empty vocabulary");
  auto t = std::make_unique<ByteBpeTokenizer>();
  RTNQ_RETURN_IF_ERROR(t->init(std::move(config)));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace rtnq
