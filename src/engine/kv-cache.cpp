#include "engine/kv-cache.h"

#include "core/check.h"

namespace rtnq {

KvCache::KvCache(int64_t n_layers, int64_t max_seq, int64_t n_kv_heads, int64_t head_dim)
    : n_layers_(n_layers), max_seq_(max_seq), row_(n_kv_heads * head_dim) {
  RTNQ_CHECK(n_layers > 0 && max_seq > 0 && row_ > 0, "cache {} x {} x {}", n_layers, max_seq, row_);
  const size_t n = size_t(n_layers) * size_t(max_seq) * size_t(row_);
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

size_t KvCache::offset(int64_t layer, int64_t pos) const {
  RTNQ_CHECK(layer >= 0 && layer < n_layers_ && pos >= 0 && pos < max_seq_, "layer {} pos {} outside {} x {}", layer,
             pos, n_layers_, max_seq_);
  return (size_t(layer) * size_t(max_seq_) + size_t(pos)) * size_t(row_);
}

}  // namespace rtnq
