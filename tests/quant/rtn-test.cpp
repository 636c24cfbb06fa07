// RTN: the fast path against the reference, the reference against properties it must have.
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/thread-pool.h"
#include "quant/pack.h"
#include "rtnq/quant.h"

namespace rtnq {
namespace {

struct Seeded {
  uint32_t seed = std::random_device{}();
  std::mt19937_64 rng{seed};
  std::string trace() const { return "seed=" + std::to_string(seed); }
};

// Weights stored in `t` (as raw bytes in the view) and their exact fp32 values (what the reference sees).
struct Weights {
  TensorView view;
  std::vector<float> f32;
};

Weights make_weights(const std::vector<float>& values, DType t, int64_t rows, int64_t cols, const std::string& name = "w") {
  Weights w;
  w.f32.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) w.f32[i] = std::isfinite(values[i]) ? round_to_dtype(values[i], t) : values[i];
  auto buf = std::make_shared<std::vector<uint8_t>>(values.size() * dtype_size(t));
  if (t == DType::kF32) {
    std::memcpy(buf->data(), values.data(), values.size() * 4);
  } else {
    convert_from_f32(values.data(), t, buf->data(), values.size());
  }
  w.view.info = TensorInfo{name, t, {rows, cols}};
  w.view.data = buf->data();
  w.view.keepalive = buf;
  return w;
}

float unit_roundoff(DType t) {
  switch (t) {
    case DType::kBF16: return std::ldexp(1.0f, -8);
    case DType::kF16: return std::ldexp(1.0f, -11);
    default: return std::ldexp(1.0f, -24);
  }
}

std::vector<float> scales_as_f32(const QuantizedTensor& qt) {
  const int64_t n = qt.rows * qt.n_groups();
  std::vector<float> s(size_t(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    if (qt.scale_dtype == DType::kF32) {
      std::memcpy(&s[size_t(i)], qt.scales.data() + i * 4, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, qt.scales.data() + i * 2, 2);
      s[size_t(i)] = qt.scale_dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return s;
}

struct RefResult {
  std::vector<int8_t> q;
  std::vector<float> scales;
  std::vector<int32_t> packed;
};

RefResult run_ref(const Weights& w, int bits, int64_t group, DType scale_dtype) {
  const int64_t rows = w.view.info.shape[0], cols = w.view.info.shape[1];
  RefResult r;
  r.q.resize(size_t(rows * cols));
  r.scales.resize(size_t(rows * (cols / effective_group(group, cols))));
  const Status st = rtn_quantize_ref(w.f32.data(), rows, cols, bits, group, scale_dtype, r.q.data(), r.scales.data(),
                                     rtn_quotient_dtype(w.view.info.dtype, scale_dtype));
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  r.packed.resize(size_t(rows * packed_row_words(cols, bits)));
  pack_int32(r.q.data(), rows, cols, bits, r.packed.data());
  return r;
}

// Normal weights with a per-row magnitude spread, some exact-tie groups, some zero groups.
std::vector<float> random_weights(std::mt19937_64& rng, int64_t rows, int64_t cols, int64_t group, int bits, DType t) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  const float big_m = float(pack_offset(bits)) - 0.5f;
  const int64_t g = effective_group(group, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = std::ldexp(1.0f, int(uni(rng) * 8.0f) - 8);  // 2^-8 .. 2^-1: keeps F16 scales normal
    for (int64_t c0 = 0; c0 < cols; c0 += g) {
      float* gw = &w[size_t(r * cols + c0)];
      const float kind = uni(rng);
      if (kind < 0.05f) {
        for (int64_t j = 0; j < g; ++j) gw[j] = 0.0f;
      } else if (kind < 0.35f) {
        // Exact ties: an anchor M*s0 that makes the scale s0 and weights (k + 1/2) * s0 or k * s0.
        const float s0 = std::ldexp(1.0f + float(int(uni(rng) * 8.0f)) / 8.0f, int(uni(rng) * 6.0f) - 10);
        for (int64_t j = 0; j < g; ++j) {
          const int k = int(uni(rng) * float(2 * pack_offset(bits))) - pack_offset(bits);
          const float v = (float(k) + (uni(rng) < 0.5f ? 0.5f : 0.0f)) * s0;
          gw[j] = round_to_dtype(v, t) == v ? v : float(k) * s0;
        }
        const float anchor = (uni(rng) < 0.5f ? -1.0f : 1.0f) * big_m * s0;
        gw[int64_t(uni(rng) * float(g)) % g] = anchor;
      } else {
        for (int64_t j = 0; j < g; ++j) gw[j] = normal(rng) * row_scale;
      }
    }
  }
  return w;
}

TEST(Rtn, FastPathIsBitIdenticalToReference) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  ThreadPool pool(3);
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  for (DType in : dtypes)
    for (DType scale_dtype : dtypes)
      for (int bits : {4, 8})
        for (int64_t group : {int64_t{32}, int64_t{64}, int64_t{128}, int64_t{256}, kPerChannel})
          for (int64_t rows : {int64_t{1}, int64_t{7}, int64_t{13}}) {
            // Per channel also on widths that exercise every tail (not multiples of 8 or 32).
            for (int64_t cols : {int64_t{256}, int64_t{768}, int64_t{37}, int64_t{200}}) {
              if (group != kPerChannel && cols % group != 0) continue;
              SCOPED_TRACE(fmt::format("in={} scale={} bits={} group={} rows={} cols={}", dtype_name(in),
                                       dtype_name(scale_dtype), bits, group, rows, cols));
              const Weights w = make_weights(random_weights(s.rng, rows, cols, group, bits, in), in, rows, cols);
              const RefResult ref = run_ref(w, bits, group, scale_dtype);
              for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
                auto qt = rtn_quantize(w.view, bits, group, scale_dtype, p);
                ASSERT_TRUE(qt.has_value()) << qt.status().to_string();
                ASSERT_EQ(qt->packed, ref.packed);
                const std::vector<float> fast_scales = scales_as_f32(*qt);
                ASSERT_EQ(fast_scales.size(), ref.scales.size());
                for (size_t i = 0; i < fast_scales.size(); ++i)
                  ASSERT_EQ(f32_to_bits(fast_scales[i]), f32_to_bits(ref.scales[i])) << "scale " << i;
              }
            }
          }
}

TEST(Rtn, StatisticsAreRightAndIndependentOfThreads) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  const int64_t rows = 61, cols = 512;
  for (DType in : {DType::kF32, DType::kBF16})
    for (int bits : {4, 8}) {
      const Weights w = make_weights(random_weights(s.rng, rows, cols, 128, bits, in), in, rows, cols);
      const RefResult ref = run_ref(w, bits, 128, in);
      double sse = 0, ssw = 0, mx = 0;
      for (int64_t i = 0; i < rows * cols; ++i) {
        const double e = double(w.f32[size_t(i)]) - double(ref.q[size_t(i)]) * double(ref.scales[size_t(i / 128)]);
        sse += e * e;
        ssw += double(w.f32[size_t(i)]) * double(w.f32[size_t(i)]);
        mx = std::max(mx, std::fabs(e));
      }
      auto one = rtn_quantize(w.view, bits, 128, in, nullptr);
      ASSERT_TRUE(one.has_value());
      EXPECT_NEAR(one->sum_sq_error, sse, 1e-5 * sse);
      EXPECT_NEAR(one->sum_sq_weight, ssw, 1e-5 * ssw);
      EXPECT_NEAR(one->max_abs_error, mx, 1e-6 * mx);
      EXPECT_GT(one->relative_rms_error(), 0.0);
      EXPECT_LT(one->relative_rms_error(), bits == 4 ? 0.2 : 0.02);
      for (int threads : {2, 3, 5}) {
        ThreadPool pool(threads);
        auto many = rtn_quantize(w.view, bits, 128, in, &pool);
        ASSERT_TRUE(many.has_value());
        EXPECT_EQ(many->sum_sq_error, one->sum_sq_error) << threads << " threads";
        EXPECT_EQ(many->sum_sq_weight, one->sum_sq_weight);
        EXPECT_EQ(many->max_abs_error, one->max_abs_error);
      }
    }
}

// The bound on |w - q*s| (s the stored scale, M = 2^(b-1) - 1/2, u_s and u_q the unit roundoffs of
// the scale and quotient dtypes: 2^-24 F32, 2^-11 F16, 2^-8 BF16).
//  - q not clamped: q = rne(x), x = w/s * (1 + d), |d| <= u_q + 2^-24 (fp32 division, then the
//    rounding to the quotient dtype), so |w/s - q| <= 1/2 + |w/s| * (u_q + 2^-23).
//  - q clamped at the top (only possible there: |w/s| <= a/s < M + 1): s = (a/M)(1 + e),
//    |e| <= u_s + 2^-24, so w/s - q_max <= a/s - (M - 1/2) <= 1/2 + (M + 1) * (u_s + 2^-23).
// With an fp32 quotient and fp32 scales this is s/2 up to a few fp32 ulps; with bf16 it is not.
// A small absolute slack covers F16 subnormal quotients (absolute error <= 2^-25); for a subnormal
// F16 scale, u_s is replaced by its absolute rounding 2^-25 / s.
TEST(Rtn, ErrorWithinProvenBound) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  for (DType in : {DType::kF32, DType::kF16, DType::kBF16})
    for (DType scale_dtype : {DType::kF32, DType::kF16, DType::kBF16})
      for (int bits : {4, 8})
        for (int64_t group : {int64_t{32}, int64_t{128}, kPerChannel}) {
          const int64_t rows = 9, cols = 256;
          const Weights w = make_weights(random_weights(s.rng, rows, cols, group, bits, in), in, rows, cols);
          const RefResult ref = run_ref(w, bits, group, scale_dtype);
          const DType qd = rtn_quotient_dtype(in, scale_dtype);
          const double u_q = unit_roundoff(qd), u_s = unit_roundoff(scale_dtype);
          const double big_m = pack_offset(bits) - 0.5;
          const int64_t g = effective_group(group, cols);
          double worst = 0.0;
          for (int64_t i = 0; i < rows * cols; ++i) {
            const double sc = ref.scales[size_t(i / g)];
            const double wv = w.f32[size_t(i)];
            const int q = ref.q[size_t(i)];
            ASSERT_GE(q, q_min(bits));
            ASSERT_LE(q, q_max(bits));
            if (sc == 0.0) {
              ASSERT_EQ(q, 0);
              continue;
            }
            const double unclamped = 0.5 + std::fabs(wv / sc) * (u_q + 0x1p-23);
            // An F16 scale below 2^-14 is subnormal: its rounding is absolute (2^-25), not relative.
            const double u_s_eff = scale_dtype == DType::kF16 ? std::max(u_s, 0x1p-25 / sc) : u_s;
            const double clamped = q == q_max(bits) ? 0.5 + (big_m + 1.0) * (u_s_eff + 0x1p-23) : 0.0;
            const double bound = sc * (std::max(unclamped, clamped) + 0x1p-20);
            const double err = std::fabs(wv - double(q) * sc);
            ASSERT_LE(err, bound) << "i=" << i << " w=" << wv << " q=" << q << " s=" << sc << " in=" << dtype_name(in)
                                  << " scale=" << dtype_name(scale_dtype) << " bits=" << bits;
            if (qd == DType::kF32 && scale_dtype == DType::kF32) {
              ASSERT_LE(err, sc * (0.5 + 0x1p-16));
            }
            worst = std::max(worst, err / sc);
          }
          EXPECT_GE(worst, 0.4) << "random data should come close to the s/2 bound";
        }
}

TEST(Rtn, GridValuesComeBackExactlyAndTiesGoToEven) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  std::uniform_int_distribution<int> mant(0, 7), expo(-12, -3), coin(0, 1);
  for (DType in : {DType::kF32, DType::kF16, DType::kBF16})
    for (int bits : {4, 8}) {
      const int64_t rows = 5, cols = 128, group = 32;
      // bf16 holds 8 significant bits and f16 11: INT8 ties (k + 1/2 up to 127.5, 8 bits) need a
      // power-of-two scale there.
      const bool pow2 = in != DType::kF32 && bits == 8;
      std::uniform_int_distribution<int> kd(q_min(bits), q_max(bits));
      std::vector<float> v(static_cast<size_t>(rows * cols));
      std::vector<float> s0(static_cast<size_t>(rows * cols / group));
      std::vector<int> want(v.size());
      std::vector<bool> grid(v.size(), false);
      for (size_t gi = 0; gi < s0.size(); ++gi) {
        s0[gi] = std::ldexp(1.0f + (pow2 ? 0.0f : float(mant(s.rng)) / 8.0f), expo(s.rng));
        const float big_m = float(pack_offset(bits)) - 0.5f;
        for (int64_t j = 0; j < group; ++j) {
          const size_t i = gi * size_t(group) + size_t(j);
          const int k = kd(s.rng);
          if (j == 0) {  // the anchor: |w| = M * s0 makes the scale exactly s0; +M*s0 -> q_max, -M*s0 -> q_min
            const bool neg = coin(s.rng);
            v[i] = (neg ? -big_m : big_m) * s0[gi];
            want[i] = neg ? q_min(bits) : q_max(bits);
          } else if (coin(s.rng) && k < q_max(bits)) {  // a tie (k + 1/2) * s0: round half to even
            v[i] = (float(k) + 0.5f) * s0[gi];
            want[i] = (k % 2 == 0) ? k : k + 1;
          } else {  // a grid value; |k| <= M so it cannot raise the absmax above the anchor's
            const int kg = std::max(k, q_min(bits) + 1);
            v[i] = float(kg) * s0[gi];
            want[i] = kg;
            grid[i] = true;
          }
          ASSERT_EQ(round_to_dtype(v[i], in), v[i]) << "test data must be representable";
        }
      }
      const Weights w = make_weights(v, in, rows, cols);
      const RefResult ref = run_ref(w, bits, group, in);
      for (size_t gi = 0; gi < s0.size(); ++gi) ASSERT_EQ(ref.scales[gi], s0[gi]) << "group " << gi;
      for (size_t i = 0; i < v.size(); ++i) {
        ASSERT_EQ(ref.q[i], want[i]) << "i=" << i << " w=" << v[i] << " s=" << s0[i / group];
        if (grid[i]) {
          ASSERT_EQ(float(ref.q[i]) * s0[i / group], v[i]) << "grid value must dequantize exactly";
        }
      }
      auto qt = rtn_quantize(w.view, bits, group, in);
      ASSERT_TRUE(qt.has_value());
      ASSERT_EQ(qt->packed, ref.packed);
    }
}

TEST(Rtn, ZeroGroupsGiveZeroScaleAndNoNaN) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t rows = 4, cols = 256;
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (auto& x : v) x = normal(s.rng);
  for (int64_t j = 64; j < 128; ++j) v[size_t(j)] = 0.0f;                      // row 0, group 1 (of 64)
  for (int64_t j = 0; j < cols; ++j) v[size_t(2 * cols + j)] = (j % 2) ? -0.0f : 0.0f;  // all of row 2
  for (DType in : {DType::kF32, DType::kBF16}) {
    const Weights w = make_weights(v, in, rows, cols);
    const RefResult ref = run_ref(w, 4, 64, in);
    EXPECT_EQ(ref.scales[1], 0.0f);
    for (int g = 0; g < 4; ++g) EXPECT_EQ(ref.scales[size_t(2 * 4 + g)], 0.0f);
    for (int64_t j = 64; j < 128; ++j) EXPECT_EQ(ref.q[size_t(j)], 0);
    for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(ref.q[size_t(2 * cols + j)], 0);
    auto qt = rtn_quantize(w.view, 4, 64, in);
    ASSERT_TRUE(qt.has_value());
    EXPECT_EQ(qt->packed, ref.packed);
    for (float sc : scales_as_f32(*qt)) EXPECT_FALSE(std::isnan(sc));
    std::vector<float> deq(v.size());
    dequantize_rows(qt->packed.data(), qt->scales.data(), in, rows, cols, 4, 64, deq.data());
    for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(deq[size_t(2 * cols + j)], 0.0f);
    for (float d : deq) ASSERT_TRUE(std::isfinite(d));
    EXPECT_TRUE(std::isfinite(qt->relative_rms_error()));
  }
}

TEST(Rtn, NonFiniteWeightsAreRefusedWithTheirIndex) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  const int64_t rows = 9, cols = 384;
  std::normal_distribution<float> normal(0.0f, 0.1f);
  std::uniform_int_distribution<int64_t> idx(0, rows * cols - 1);
  for (DType in : {DType::kF32, DType::kF16, DType::kBF16})
    for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
      std::vector<float> v(static_cast<size_t>(rows * cols));
      for (auto& x : v) x = normal(s.rng);
      const int64_t at = idx(s.rng);
      v[size_t(at)] = bad;
      const Weights w = make_weights(v, in, rows, cols, "model.layers.3.mlp.up_proj.weight");
      const std::string where = fmt::format("flat index {} (row {}, col {})", at, at / cols, at % cols);
      ThreadPool pool(2);
      auto qt = rtn_quantize(w.view, 4, 128, in, &pool);
      ASSERT_FALSE(qt.has_value());
      EXPECT_EQ(qt.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(qt.status().message().find(where), std::string::npos) << qt.status().message();
      EXPECT_NE(qt.status().message().find("model.layers.3.mlp.up_proj.weight"), std::string::npos);
      std::vector<int8_t> q(v.size());
      std::vector<float> sc(static_cast<size_t>(rows * cols / 128));
      const Status st = rtn_quantize_ref(w.f32.data(), rows, cols, 4, 128, in, q.data(), sc.data());
      ASSERT_FALSE(st.is_ok());
      EXPECT_NE(st.message().find(where), std::string::npos) << st.message();
    }
}

TEST(Rtn, BadArgumentsAreRefused) {
  Seeded s;
  SCOPED_TRACE(s.trace());
  std::normal_distribution<float> normal(0.0f, 0.1f);
  std::vector<float> v(4 * 128);
  for (auto& x : v) x = normal(s.rng);
  const Weights w = make_weights(v, DType::kBF16, 4, 128, "t");
  for (int64_t g : {int64_t{48}, int64_t{0}, int64_t{-2}, int64_t{256}}) {
    auto qt = rtn_quantize(w.view, 4, g, DType::kBF16);
    ASSERT_FALSE(qt.has_value()) << g;
    EXPECT_NE(qt.status().message().find("group size " + std::to_string(g)), std::string::npos) << qt.status().message();
    std::vector<int8_t> q(v.size());
    std::vector<float> sc(512);
    EXPECT_FALSE(rtn_quantize_ref(w.f32.data(), 4, 128, 4, g, DType::kBF16, q.data(), sc.data()).is_ok());
  }
  EXPECT_FALSE(rtn_quantize(w.view, 3, 32, DType::kBF16).has_value());
  EXPECT_FALSE(rtn_quantize(w.view, 4, 32, DType::kI8).has_value());
  TensorView flat = w.view;
  flat.info.shape = {512};
  EXPECT_FALSE(rtn_quantize(flat, 4, 32, DType::kBF16).has_value());
  TensorView ints = w.view;
  ints.info.dtype = DType::kI16;
  auto bad = rtn_quantize(ints, 4, 32, DType::kBF16);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnsupported);
  // An F16 scale cannot hold absmax / 7.5 above ~491k.
  std::vector<float> huge(v);
  huge[130] = 1e6f;
  const Weights hw = make_weights(huge, DType::kF32, 4, 128, "t");
  auto over = rtn_quantize(hw.view, 4, 32, DType::kF16);
  ASSERT_FALSE(over.has_value());
  EXPECT_NE(over.status().message().find("row 1 group 0"), std::string::npos) << over.status().message();
}

// One row, hand-computed: INT4, group 8, fp32 weights and scales.
//   group 0: absmax 7.5 -> s = 1; w/s = 7.5 -7.5 0 1 -1 2.5 -2.5 3.2 -> q = 7(clamped 8) -8 0 1 -1 2 -2 3
//   group 1: absmax 15 -> s = 2;  w/s = -7.5 .5 -.5 1.5 -1.5 2.5 .45 7 -> q = -8 0 0 2 -2 2 0 7
//   stored q+8, element j at bits 4*(j%8): 0xB6A7980F, 0xF8A6A880.
TEST(Rtn, HandComputedInt4Example) {
  const std::vector<float> v = {7.5f, -7.5f, 0.0f, 1.0f, -1.0f, 2.5f, -2.5f, 3.2f,
                                -15.0f, 1.0f, -1.0f, 3.0f, -3.0f, 5.0f, 0.9f, 14.0f};
  const Weights w = make_weights(v, DType::kF32, 1, 16);
  const RefResult ref = run_ref(w, 4, 8, DType::kF32);
  EXPECT_EQ(ref.scales, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(ref.q, (std::vector<int8_t>{7, -8, 0, 1, -1, 2, -2, 3, -8, 0, 0, 2, -2, 2, 0, 7}));
  EXPECT_EQ(ref.packed, (std::vector<int32_t>{int32_t(0xB6A7980Fu), int32_t(0xF8A6A880u)}));
  auto qt = rtn_quantize(w.view, 4, 8, DType::kF32);
  ASSERT_TRUE(qt.has_value());
  EXPECT_EQ(qt->packed, ref.packed);
}

// Why the quotient's dtype matters, by hand: BF16 weights [100, 79.5], INT8, per channel, BF16 scale.
//   s = bf16(100 / 127.5 = 0.784313...) = 0.78515625 (bf16 0x3F49)
//   100 / s = 127.363... -> bf16 127.5 -> 128 -> clamp 127 (fp32 quotient: 127 as well)
//   79.5 / s = 101.2537... -> bf16 101.5 (nearer than 101.0) -> half to even 102; an fp32 quotient gives 101.
// torch (vLLM rtn, compressed-tensors) computes bf16 / bf16 in bf16, so 102 is the answer to match.
TEST(Rtn, QuotientIsRoundedToTheWeightDtype) {
  const Weights w = make_weights({100.0f, 79.5f}, DType::kBF16, 1, 2);
  const RefResult ref = run_ref(w, 8, kPerChannel, DType::kBF16);
  EXPECT_EQ(ref.scales[0], 0.78515625f);
  EXPECT_EQ(ref.q, (std::vector<int8_t>{127, 102}));
  std::vector<int8_t> q32(2);
  float s32;
  ASSERT_TRUE(rtn_quantize_ref(w.f32.data(), 1, 2, 8, kPerChannel, DType::kBF16, q32.data(), &s32, DType::kF32).is_ok());
  EXPECT_EQ(q32, (std::vector<int8_t>{127, 101}));
  auto qt = rtn_quantize(w.view, 8, kPerChannel, DType::kBF16);
  ASSERT_TRUE(qt.has_value());
  // INT8 fields are q + 128, little end first: 255 | 230 << 8.
  EXPECT_EQ(qt->packed, (std::vector<int32_t>{255 | (230 << 8)}));
  // With F32 scales torch promotes to fp32, and so do we.
  auto qt32 = rtn_quantize(w.view, 8, kPerChannel, DType::kF32);
  ASSERT_TRUE(qt32.has_value());
  std::vector<int8_t> back(2);
  unpack_int32(qt32->packed.data(), 1, 2, 8, back.data());
  EXPECT_EQ(back[1], 101);

  // On random bf16 data the two conventions disagree often for INT8: the test above is not a corner case.
  Seeded s;
  SCOPED_TRACE(s.trace());
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(16 * 256);
  for (auto& x : v) x = normal(s.rng);
  const Weights rw = make_weights(v, DType::kBF16, 16, 256);
  const RefResult bf = run_ref(rw, 8, 128, DType::kBF16);
  std::vector<int8_t> qf(v.size());
  std::vector<float> sf(32);
  ASSERT_TRUE(rtn_quantize_ref(rw.f32.data(), 16, 256, 8, 128, DType::kBF16, qf.data(), sf.data(), DType::kF32).is_ok());
  int differ = 0;
  for (size_t i = 0; i < v.size(); ++i) differ += bf.q[i] != qf[i];
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace rtnq
