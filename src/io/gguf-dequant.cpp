#include "io/gguf-dequant.h"

#include <cstring>

#include <fmt/format.h>

#include "rtnq/dtype.h"

namespace rtnq {
namespace {

using namespace ggml;

// Blocks are copied out of the map rather than cast in place: a block's offset inside a tensor
// need not be aligned for its uint16_t fields.
template <typename Block>
Block load_block(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(Block));
  return b;
}

void dequant_q4_0(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = load_block<BlockQ4_0>(src + i * sizeof(BlockQ4_0));
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float((b.qs[j] & 0x0f) - 8) * d;
      y[j + kQK / 2] = float((b.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = load_block<BlockQ4_1>(src + i * sizeof(BlockQ4_1));
    const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(b.qs[j] & 0x0f) * d + m;
      y[j + kQK / 2] = float(b.qs[j] >> 4) * d + m;
    }
  }
}

// Weight j (< 16) takes bit j of qh as its 5th bit; weight j + 16 takes bit j + 16.
void dequant_q5_0(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = load_block<BlockQ5_0>(src + i * sizeof(BlockQ5_0));
    const float d = f16_to_f32(b.d);
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (b.qs[j] & 0x0f) | int(((qh >> j) & 1u) << 4);
      const int hi = (b.qs[j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
      y[j] = float(lo - 16) * d;
      y[j + kQK / 2] = float(hi - 16) * d;
    }
  }
}

void dequant_q5_1(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = load_block<BlockQ5_1>(src + i * sizeof(BlockQ5_1));
    const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (b.qs[j] & 0x0f) | int(((qh >> j) & 1u) << 4);
      const int hi = (b.qs[j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
      y[j] = float(lo) * d + m;
      y[j + kQK / 2] = float(hi) * d + m;
    }
  }
}

void dequant_q8_0(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = load_block<BlockQ8_0>(src + i * sizeof(BlockQ8_0));
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK; ++j) y[j] = float(b.qs[j]) * d;
  }
}

// The 12 bytes hold 8 (scale, min) pairs of 6 bits. Pairs 0-3: low 6 bits of bytes 0-3 (scales)
// and 4-7 (mins). Pairs 4-7: low nibble (scale) / high nibble (min) of bytes 8-11, with their top
// 2 bits in the top 2 bits of bytes 0-3 (scales) and 4-7 (mins).
void get_scale_min(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Each 64 weights use 32 bytes of qs: low nibbles are the first 32 weights (sub-block 2k),
// high nibbles the next 32 (sub-block 2k + 1). Weight = d * sc * q - dmin * m.
void dequant_q4_k(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_K>(src + i * sizeof(BlockQ4_K));
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    const uint8_t* q = b.qs;
    for (int sub = 0; sub < 8; sub += 2, q += 32) {
      int sc0, m0, sc1, m1;
      get_scale_min(sub, b.scales, &sc0, &m0);
      get_scale_min(sub + 1, b.scales, &sc1, &m1);
      const float d0 = d * float(sc0), mm0 = dmin * float(m0);
      const float d1 = d * float(sc1), mm1 = dmin * float(m1);
      for (int l = 0; l < 32; ++l) *y++ = d0 * float(q[l] & 0x0f) - mm0;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] >> 4) - mm1;
    }
  }
}

// As Q4_K, plus a 5th bit: for sub-block s, weight l's high bit is bit s of qh[l].
void dequant_q5_k(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ5_K>(src + i * sizeof(BlockQ5_K));
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    const uint8_t* q = b.qs;
    for (int sub = 0; sub < 8; sub += 2, q += 32) {
      int sc0, m0, sc1, m1;
      get_scale_min(sub, b.scales, &sc0, &m0);
      get_scale_min(sub + 1, b.scales, &sc1, &m1);
      const float d0 = d * float(sc0), mm0 = dmin * float(m0);
      const float d1 = d * float(sc1), mm1 = dmin * float(m1);
      for (int l = 0; l < 32; ++l)
        *y++ = d0 * float((q[l] & 0x0f) + (((b.qh[l] >> sub) & 1) << 4)) - mm0;
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * float((q[l] >> 4) + (((b.qh[l] >> (sub + 1)) & 1) << 4)) - mm1;
    }
  }
}

// Two halves of 128 weights. In half h, for l < 32 the four weights l, l+32, l+64, l+96 take
// their low nibbles from ql[64h + l] (low, high) and ql[64h + l + 32] (low, high) in the order
// (l: low of ql[l], l+32: low of ql[l+32], l+64: high of ql[l], l+96: high of ql[l+32]) and their
// top 2 bits from qh[32h + l] bits 0-1, 2-3, 4-5, 6-7. Each run of 16 has its own scale.
void dequant_q6_k(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ6_K>(src + i * sizeof(BlockQ6_K));
    const float d = f16_to_f32(b.d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q0 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[s + 0]) * float(q0);
        y[l + 32] = d * float(sc[s + 2]) * float(q1);
        y[l + 64] = d * float(sc[s + 4]) * float(q2);
        y[l + 96] = d * float(sc[s + 6]) * float(q3);
      }
    }
  }
}

}  // namespace

bool ggml_can_dequantize(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: case GgmlType::kF16: case GgmlType::kBF16: case GgmlType::kQ8_0:
    case GgmlType::kQ4_0: case GgmlType::kQ4_1: case GgmlType::kQ5_0: case GgmlType::kQ5_1:
    case GgmlType::kQ4_K: case GgmlType::kQ5_K: case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

Status dequantize_ggml(GgmlType t, std::span<const uint8_t> src, int64_t n, float* dst, std::string_view tensor) {
  const std::string who = tensor.empty() ? std::string("tensor") : fmt::format("tensor '{}'", tensor);
  if (!ggml_can_dequantize(t))
    return unsupported(fmt::format("{}: cannot dequantize ggml type {} (supported: F32, F16, BF16, Q8_0, Q4_0, "
                                   "Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                                   who, ggml_type_name(t)));
  const auto traits = *ggml_type_traits(t);
  if (n < 0 || n % traits.block_size != 0)
    return invalid_argument(fmt::format("{}: {} elements is not a multiple of the {} block size {}", who, n,
                                        ggml_type_name(t), traits.block_size));
  const int64_t nb = n / traits.block_size;
  const uint64_t expected = uint64_t(nb) * uint64_t(traits.type_size);
  if (src.size() != expected)
    return invalid_argument(fmt::format("{}: {} elements of {} take {} bytes, got {}", who, n, ggml_type_name(t),
                                        expected, src.size()));
  const uint8_t* p = src.data();
  switch (t) {
    case GgmlType::kF32: if (n) std::memcpy(dst, p, size_t(n) * 4); break;
    case GgmlType::kF16: convert_to_f32(p, DType::kF16, dst, size_t(n)); break;
    case GgmlType::kBF16: convert_to_f32(p, DType::kBF16, dst, size_t(n)); break;
    case GgmlType::kQ8_0: dequant_q8_0(p, nb, dst); break;
    case GgmlType::kQ4_0: dequant_q4_0(p, nb, dst); break;
    case GgmlType::kQ4_1: dequant_q4_1(p, nb, dst); break;
    case GgmlType::kQ5_0: dequant_q5_0(p, nb, dst); break;
    case GgmlType::kQ5_1: dequant_q5_1(p, nb, dst); break;
    case GgmlType::kQ4_K: dequant_q4_k(p, nb, dst); break;
    case GgmlType::kQ5_K: dequant_q5_k(p, nb, dst); break;
    case GgmlType::kQ6_K: dequant_q6_k(p, nb, dst); break;
    default: break;  // excluded by ggml_can_dequantize above
  }
  return Status::ok();
}

}  // namespace rtnq
