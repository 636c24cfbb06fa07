// SentencePiece-style BPE as llama2.c's run.c encodes: a dummy-prefix space, one symbol per UTF-8
// character (bytes of characters missing from the vocabulary become <0xXX> tokens), then repeatedly
// merge the adjacent pair whose concatenation is the highest-scoring vocabulary entry, leftmost on
// ties. A priority queue with lazy invalidation gives the same merge order as run.c's rescans in
// O(n log n), which matters for perplexity over whole files.
#include <array>
#include <cstdio>
#include <queue>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/tokenizer.h"

namespace rtnq {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // '▁', SentencePiece's visible space

int byte_token_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  unsigned v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = t[size_t(i)];
    v = v * 16 + unsigned(c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 99);
  }
  return v < 256 ? int(v) : -1;
}

size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;  // a stray continuation byte stands alone
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, from.size(), from) == 0) {
      out += to;
      i += from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const TokenizerData& d) : scores_(d.scores) {
    pieces_ = d.tokens;
    bos_ = int32_t(d.bos_id);
    eos_ = int32_t(d.eos_id);
    add_bos_ = d.add_bos;
    control_.assign(pieces_.size(), 0);
    byte_id_.fill(-1);
    for (size_t i = 0; i < pieces_.size(); ++i) {
      index_.emplace(pieces_[i], int32_t(i));
      const int b = byte_token_value(pieces_[i]);
      if (b >= 0 && byte_id_[size_t(b)] < 0) byte_id_[size_t(b)] = int32_t(i);
      const bool control = i < d.token_types.size() ? d.token_types[i] == 3 : false;  // GGUF CONTROL
      if (control || int64_t(i) == d.bos_id || int64_t(i) == d.eos_id) control_[i] = 1;
      if (pieces_[i].find(kSpace) != std::string::npos) uses_visible_space_ = true;
    }
    unk_ = int32_t(d.unk_id);
    // Control tokens are never produced from text; drop them from lookup so "<s>" in text stays text.
    for (size_t i = 0; i < pieces_.size(); ++i)
      if (control_[i]) index_.erase(pieces_[i]);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    std::vector<int32_t> out;
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    if (text.empty()) return out;
    const std::string space = uses_visible_space_ ? kSpace : " ";
    std::string s = space + (uses_visible_space_ ? replace_all(text, " ", kSpace) : std::string(text));

    struct Symbol {
      size_t start, len;
      int prev, next;
      bool mergeable;  // false for characters that fell back to bytes
    };
    std::vector<Symbol> sym;
    for (size_t i = 0; i < s.size();) {
      const size_t n = std::min(utf8_len(uint8_t(s[i])), s.size() - i);
      const int id = lookup(std::string_view(s).substr(i, n));
      sym.push_back({i, n, int(sym.size()) - 1, int(sym.size()) + 1, id >= 0});
      i += n;
    }
    sym.back().next = -1;

    struct Candidate {
      float score;
      int left, right;
      size_t len;
      bool operator<(const Candidate& o) const {  // max-heap: best score, then leftmost
        return score < o.score || (score == o.score && left > o.left);
      }
    };
    std::priority_queue<Candidate> queue;
    auto try_pair = [&](int l, int r) {
      if (l < 0 || r < 0 || !sym[size_t(l)].mergeable || !sym[size_t(r)].mergeable) return;
      const size_t len = sym[size_t(l)].len + sym[size_t(r)].len;
      const int id = lookup(std::string_view(s).substr(sym[size_t(l)].start, len));
      if (id >= 0) queue.push({scores_[size_t(id)], l, r, len});
    };
    for (size_t i = 0; i + 1 < sym.size(); ++i) try_pair(int(i), int(i + 1));
    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& l = sym[size_t(c.left)];
      Symbol& r = sym[size_t(c.right)];
      // Stale: one side was merged into something else since this pair was queued.
      if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.len) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
      try_pair(l.prev, c.left);
      try_pair(c.left, l.next);
    }
    for (int i = 0; i >= 0; i = sym[size_t(i)].next) {
      const Symbol& x = sym[size_t(i)];
      const std::string_view piece = std::string_view(s).substr(x.start, x.len);
      const int id = x.mergeable ? lookup(piece) : -1;
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (unsigned char b : piece) {
        const int32_t bid = byte_id_[b];
        out.push_back(bid >= 0 ? bid : unk_);
      }
    }
    (void)parse_special;  // SentencePiece vocabularies here have no literal special tokens
    return out;
  }

  std::string decode_token(int32_t prev, int32_t token) const override {
    if (token < 0 || token >= int32_t(pieces_.size())) return {};
    const std::string& p = pieces_[size_t(token)];
    const int b = byte_token_value(p);
    if (b >= 0) return std::string(1, char(b));
    std::string text = uses_visible_space_ ? replace_all(p, kSpace, " ") : p;
    if ((prev == bos_ || prev < 0) && !text.empty() && text[0] == ' ') text.erase(0, 1);
    return text;
  }

 private:
  int lookup(std::string_view piece) const {
    auto it = index_.find(std::string(piece));
    return it == index_.end() ? -1 : it->second;
  }
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> index_;
  std::array<int32_t, 256> byte_id_{};
  int32_t unk_ = 0;
  bool uses_visible_space_ = false;
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> make_sentencepiece_tokenizer(const TokenizerData& data) {
  if (data.tokens.empty()) return invalid_argument("SentencePiece tokenizer: empty vocabulary");
  if (data.scores.size() != data.tokens.size())
    return corrupt(fmt::format("SentencePiece tokenizer: {} scores for {} tokens", data.scores.size(),
                               data.tokens.size()));
  return std::unique_ptr<Tokenizer>(new SentencePieceTokenizer(data));
}

}  // namespace rtnq
