// Linear layers y = x W^T for every weight encoding the engine runs: dense F32/F16/BF16 and the
// RTN checkpoint layout (compressed-tensors pack-quantized INT4/INT8 with per-group scales).
// Quantized weights are dequantized on the fly, a few rows at a time into an L1-sized buffer, and
// accumulated in fp32; the buffer is reused by every token of a batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "rtnq/status.h"
#include "rtnq/tensor.h"

namespace rtnq {
class ThreadPool;
}

namespace rtnq::cpu {

class Linear {
 public:
  enum class Kind : uint8_t { kF32, kF16, kBF16, kInt4, kInt8 };

  Linear() = default;
  // A dense [out, in] weight; the view is kept (zero-copy from a memory map).
  static Expected<Linear> dense(const TensorView& w);
  // Checkpoint layout: packed int32 [out, in * bits / 32] (bits from the shapes), scales
  // [out, in / group] in F32/F16/BF16. `out`/`in` come from `<prefix>.weight_shape`.
  static Expected<Linear> packed(const TensorView& packed, const TensorView& scales, int64_t out, int64_t in);

  Kind kind() const { return kind_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int bits() const;              // 32/16 for dense, 4/8 for packed
  int64_t group_size() const { return group_; }  // cols for dense and per-channel
  // Bytes one pass over the weight reads (weights + scales): the decode roofline's numerator.
  uint64_t weight_bytes() const;
  const std::string& name() const { return name_; }

  // The exact fp32 values of rows [r0, r1) (dequantized where packed) into out[(r1-r0) * cols].
  void dequantize(int64_t r0, int64_t r1, float* out) const;
  // y[t * ldy + r] = sum_c x[t * cols + c] * W[r, c] for r in [r0, r1) and t < n. No threads.
  void forward_rows(const float* x, int64_t n, float* y, int64_t ldy, int64_t r0, int64_t r1) const;
  // y[n, rows] = x[n, cols] W^T over `pool` (may be null).
  void forward(const float* x, int64_t n, float* y, ThreadPool* pool) const;

 private:
  // n == 1 path for non-F32 weights: dot products from the stored encoding.
  void forward_rows_one(const float* x, float* y, int64_t r0, int64_t r1) const;
  // The same with the AVX-512 kernels (src/cpu/kernels-avx512.h); false where they do not apply.
  bool forward_rows_one_avx512(const float* x, float* y, int64_t r0, int64_t r1) const;

  Kind kind_ = Kind::kF32;
  int64_t rows_ = 0, cols_ = 0, group_ = 0;
  const void* data_ = nullptr;     // weights or packed words
  const void* scales_ = nullptr;   // packed only
  DType scale_dtype_ = DType::kF32;
  std::shared_ptr<const void> keep_data_, keep_scales_;
  std::string name_;
};

// Several linears reading the same input (q/k/v, gate/up) in one parallel region, so the thread
// pool wakes once for all of them.
struct LinearJob {
  const Linear* linear;
  const float* x;  // [n, linear->cols()]
  float* y;        // [n, linear->rows()]
};
void run_linears(std::span<const LinearJob> jobs, int64_t n, ThreadPool* pool);

// One-token decode as work items: item i of a job list is `rows_per_item` rows of one linear
// (items never straddle two linears). For run_phases.
int64_t count_row_items(std::span<const LinearJob> jobs, int64_t rows_per_item);
void run_row_item(std::span<const LinearJob> jobs, int64_t rows_per_item, int64_t item);

// Runs phases in order inside ONE parallel region of `pool` (may be null): every item of phase p
// (fn(p, item), on any thread, in any order) finishes before any item of phase p + 1 starts.
// Between phases threads spin briefly and then wait on a futex, so a decode step pays for one pool
// wake-up instead of one per linear. Whoever is inside the region pulls items, so it completes even if
// one thread ends up running every chunk the pool hands out.
void run_phases(std::span<const int64_t> items_per_phase, const std::function<void(size_t, int64_t)>& fn,
                ThreadPool* pool);

}  // namespace rtnq::cpu
