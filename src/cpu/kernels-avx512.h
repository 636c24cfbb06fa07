// AVX-512 one-token (decode) kernels, compiled with function-level target attributes so that the rest
// of the build stays AVX2. Call them only when active_isa() == Isa::kAvx512 (src/cpu/isa.h).
//
// All of them keep the arithmetic of the baseline kernels: each product is an exact fp32 product of a
// stored weight value and an activation (the integer q as an exact float, or the BF16 value widened),
// accumulated in fp32, and a group's sum is multiplied by its scale once. Only the summation order
// differs (16 lanes instead of 8).
//
// x layout: the BF16 and INT4 kernels read x "even/odd ordered" per 32 elements
// (permute_even_odd): for each block of 32, the 16 even-index elements, then the 16 odd ones, which is
// where a 512-bit load of 32 BF16 values (low half = even element), or 16 INT4 bytes widened to
// dwords (low nibble = even element), puts them.
#pragma once

#include <cstdint>

#include "rtnq/dtype.h"

namespace rtnq::cpu::avx512 {

// out = x even/odd ordered per block of 32; a tail of cols % 32 elements is copied unchanged.
void permute_even_odd(const float* x, int64_t cols, float* out);

// y[r] = sum_g scale[r, g] * sum_{j in g} q[r, j] * x[j] for r in [r0, r1).
//   packed: row r at packed + r * bytes_per_row (the checkpoint layout, src/quant/pack-layout.h)
//   scales: [rows, n_groups] in `scale_dtype` (F32, F16 or BF16)
// int4_rows: group % 32 == 0, xp = permute_even_odd(x). int8_rows: group % 16 == 0, plain x.
void int4_rows(const uint8_t* packed, int64_t bytes_per_row, const void* scales, DType scale_dtype,
               int64_t n_groups, int64_t group, const float* xp, float* y, int64_t r0, int64_t r1);
void int8_rows(const uint8_t* packed, int64_t bytes_per_row, const void* scales, DType scale_dtype,
               int64_t n_groups, int64_t group, const float* x, float* y, int64_t r0, int64_t r1);

// y[r] = sum_c W[r, c] * x[c] for BF16 W [rows, cols]; xp = permute_even_odd(x) (which leaves the
// tail of cols % 32 elements in place).
void bf16_rows(const uint16_t* w, int64_t cols, const float* xp, float* y, int64_t r0, int64_t r1);

}  // namespace rtnq::cpu::avx512
