// Hugging Face's q/k row permutation (convert_llama_weights_to_hf's `permute`): within each head,
// row 2i + j of the interleaved layout (rotary pairs on adjacent rows) is row j * head_dim/2 + i
// of the half-split layout (pairs head_dim/2 rows apart). llama.cpp's convert_hf_to_gguf applies
// the inverse, so GGUF and llama2.c files hold the interleaved layout.
#include <cstring>

#include "core/check.h"
#include "model/loaders.h"

namespace rtnq {
namespace {

// to_half: dst[half-split row] = src[interleaved row]; otherwise the reverse.
void permute_rows(const float* src, float* dst, int64_t n_heads, int64_t head_dim, int64_t cols, bool to_half) {
  RTNQ_CHECK(head_dim > 0 && head_dim % 2 == 0, "rotary head_dim must be even, got {}", head_dim);
  RTNQ_CHECK(n_heads > 0 && cols >= 0, "bad permute shape: heads {}, cols {}", n_heads, cols);
  RTNQ_CHECK(src != dst, "permute cannot work in place");
  const int64_t half = head_dim / 2;
  const size_t row_bytes = size_t(cols) * sizeof(float);
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t base = h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t interleaved = base + 2 * i + j;
        const int64_t split = base + j * half + i;
        const int64_t from = to_half ? interleaved : split;
        const int64_t to = to_half ? split : interleaved;
        std::memcpy(dst + to * cols, src + from * cols, row_bytes);
      }
    }
  }
}

}  // namespace

void permute_rows_interleaved_to_half(const float* src, float* dst, int64_t n_heads, int64_t head_dim, int64_t cols) {
  permute_rows(src, dst, n_heads, head_dim, cols, true);
}

void permute_rows_half_to_interleaved(const float* src, float* dst, int64_t n_heads, int64_t head_dim, int64_t cols) {
  permute_rows(src, dst, n_heads, head_dim, cols, false);
}

}  // namespace rtnq
