// Keys and values of every position seen so far, per layer, in fp32: [layer][pos][kv_head][head_dim].
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rtnq {

class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t n_layers, int64_t max_seq, int64_t n_kv_heads, int64_t head_dim);

  int64_t max_seq() const { return max_seq_; }
  int64_t row_stride() const { return row_; }  // floats between consecutive positions
  // Positions [0, size()) hold valid keys/values.
  int64_t size() const { return size_; }
  void set_size(int64_t n) { size_ = n; }
  void clear() { size_ = 0; }

  float* k(int64_t layer, int64_t pos) { return k_.data() + offset(layer, pos); }
  float* v(int64_t layer, int64_t pos) { return v_.data() + offset(layer, pos); }
  const float* k(int64_t layer, int64_t pos) const { return k_.data() + offset(layer, pos); }
  const float* v(int64_t layer, int64_t pos) const { return v_.data() + offset(layer, pos); }
  uint64_t bytes() const { return uint64_t(k_.size() + v_.size()) * sizeof(float); }

 private:
  size_t offset(int64_t layer, int64_t pos) const;
  int64_t n_layers_ = 0, max_seq_ = 0, row_ = 0, size_ = 0;
  std::vector<float> k_, v_;
};

}  // namespace rtnq
