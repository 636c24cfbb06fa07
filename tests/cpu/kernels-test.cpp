// The one-token (decode) kernels under every instruction set this host supports (src/cpu/isa.h),
// against a double-precision dot product of the exact dequantized weights; and the work sharing of
// run_phases (every item once, phases in order, with uneven item costs so that stealing happens).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "core/thread-pool.h"
#include "cpu/isa.h"
#include "cpu/linear.h"
#include "quant/pack-layout.h"
#include "rtnq/dtype.h"

namespace rtnq::cpu {
namespace {

struct Case {
  uint32_t seed = std::random_device{}();
  std::mt19937 gen{seed};
};

// Runs fn once per supported instruction set, then restores the one in use.
template <typename F>
void for_each_isa(F&& fn) {
  const Isa before = active_isa();
  for (Isa isa : {Isa::kBaseline, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    force_isa(isa);
    SCOPED_TRACE(std::string("isa ") + isa_name(isa));
    fn(isa);
  }
  force_isa(before);
}

// Memory a test controls the alignment of: `offset` bytes past a 64-byte boundary.
struct Buffer {
  std::shared_ptr<std::vector<uint8_t>> bytes;
  void* data = nullptr;
  Buffer(size_t n, size_t offset) : bytes(std::make_shared<std::vector<uint8_t>>(n + 128)) {
    auto p = reinterpret_cast<uintptr_t>(bytes->data());
    data = reinterpret_cast<void*>((p + 63) / 64 * 64 + offset);
  }
  TensorView view(DType dt, Shape shape, std::string name) const {
    TensorView v;
    v.info = {std::move(name), dt, std::move(shape)};
    v.data = data;
    v.keepalive = std::shared_ptr<const void>(bytes, data);
    return v;
  }
};

// A packed linear from random q (checkpoint layout restated: element j in word j / (32/bits) at bit
// (j % (32/bits)) * bits, stored as q + 2^(bits-1)) and random positive scales in `sdt`.
struct Packed {
  Linear lin;
  std::vector<float> exact;  // q * s, the exact fp32 weights
};
Packed make_packed(std::mt19937& gen, int bits, int64_t rows, int64_t cols, int64_t group, DType sdt,
                   size_t offset = 0, bool pow2_scales = false) {
  std::uniform_int_distribution<int> qd(q_min(bits), q_max(bits));
  std::normal_distribution<float> nd;
  const int64_t pf = 32 / bits, wpr = cols / pf, ng = cols / group;
  Buffer words(size_t(rows * wpr) * 4, offset);
  auto* w = static_cast<uint32_t*>(words.data);
  std::memset(w, 0, size_t(rows * wpr) * 4);
  std::vector<int> q(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      q[size_t(r * cols + c)] = qd(gen);
      w[r * wpr + c / pf] |= uint32_t(q[size_t(r * cols + c)] + pack_offset(bits)) << ((c % pf) * bits);
    }
  std::vector<float> s(size_t(rows * ng));
  std::uniform_int_distribution<int> ed(-3, 0);
  for (auto& v : s) v = pow2_scales ? std::ldexp(1.0f, ed(gen)) : round_to_dtype(std::abs(nd(gen)) * 0.02f + 1e-4f, sdt);
  Buffer sbuf(s.size() * dtype_size(sdt), 0);
  convert_from_f32(s.data(), sdt, sbuf.data, s.size());
  Packed out;
  out.exact.resize(q.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out.exact[size_t(r * cols + c)] = float(q[size_t(r * cols + c)]) * s[size_t(r * ng + c / group)];
  auto lin = Linear::packed(words.view(DType::kI32, {rows, wpr}, "t.weight_packed"),
                            sbuf.view(sdt, {rows, ng}, "t.weight_scale"), rows, cols);
  EXPECT_TRUE(lin) << lin.status().to_string();
  out.lin = std::move(*lin);
  return out;
}

// |y - exact| <= a few fp32 ulps of sum |x w| per row (the accumulation order is the kernel's).
void expect_rows_close(const Linear& lin, const std::vector<float>& exact, const std::vector<float>& x,
                       const std::vector<float>& y) {
  for (int64_t r = 0; r < lin.rows(); ++r) {
    double want = 0, mag = 0;
    for (int64_t c = 0; c < lin.cols(); ++c) {
      want += double(x[size_t(c)]) * exact[size_t(r * lin.cols() + c)];
      mag += std::abs(double(x[size_t(c)]) * exact[size_t(r * lin.cols() + c)]);
    }
    ASSERT_NEAR(y[size_t(r)], want, 1e-6 * mag + 1e-30) << "row " << r << " of " << lin.name();
  }
}

TEST(CpuKernels, PackedOneTokenMatchesDoubleOnEveryIsa) {
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  std::normal_distribution<float> nd;
  for_each_isa([&](Isa) {
    for (int bits : {4, 8}) {
      // Odd row counts; groups 32/64/128, per-channel, a group that does not divide 128, and
      // (INT8) a group of 16; cols with a remainder after whole 64/128-element blocks.
      for (auto [rows, cols, group] :
           {std::tuple<int64_t, int64_t, int64_t>{1, 32, 32}, {37, 576, 64}, {5, 160, 32}, {19, 1536, 128},
            {3, 576, 576}, {7, 288, 96}, {9, 224, 224}, {11, 48, 16}, {13, 40, 8}}) {
        if (bits == 4 && group % 8 != 0) continue;
        for (DType sdt : {DType::kBF16, DType::kF16, DType::kF32}) {
          for (size_t offset : {size_t{0}, size_t{4}}) {
            Packed p = make_packed(c.gen, bits, rows, cols, group, sdt, offset);
            std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows), NAN);
            for (auto& v : x) v = nd(c.gen);
            p.lin.forward_rows(x.data(), 1, y.data(), rows, 0, rows);
            SCOPED_TRACE("bits " + std::to_string(bits) + " group " + std::to_string(group) + " cols " +
                         std::to_string(cols) + " scales " + std::string(dtype_name(sdt)));
            expect_rows_close(p.lin, p.exact, x, y);
            // Row sub-ranges (work items) give the same bits as the whole range.
            std::vector<float> y2(size_t(rows), NAN);
            for (int64_t r = 0; r < rows; r += 3) p.lin.forward_rows(x.data(), 1, y2.data(), rows, r, std::min(rows, r + 3));
            ASSERT_EQ(0, std::memcmp(y.data(), y2.data(), y.size() * sizeof(float)));
          }
        }
      }
    }
  });
}

TEST(CpuKernels, IntegerInputsGiveExactSums) {
  // Small integer activations and power-of-two scales: every product and every partial sum is a
  // multiple of 1/8 below 2^21, exactly representable in fp32, so the result must equal the exact
  // value bit for bit. A kernel that rounded a weight, an activation or a product would not.
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  std::uniform_int_distribution<int> xd(-4, 4);
  for_each_isa([&](Isa) {
    for (int bits : {4, 8}) {
      for (auto [rows, cols, group] :
           {std::tuple<int64_t, int64_t, int64_t>{23, 576, 64}, {9, 256, 32}, {4, 1536, 1536}, {6, 384, 128}}) {
        for (DType sdt : {DType::kF32, DType::kBF16}) {
          Packed p = make_packed(c.gen, bits, rows, cols, group, sdt, 0, /*pow2_scales=*/true);
          std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows), NAN);
          for (auto& v : x) v = float(xd(c.gen));
          p.lin.forward_rows(x.data(), 1, y.data(), rows, 0, rows);
          for (int64_t r = 0; r < rows; ++r) {
            double want = 0;
            for (int64_t k = 0; k < cols; ++k) want += double(x[size_t(k)]) * p.exact[size_t(r * cols + k)];
            ASSERT_EQ(double(y[size_t(r)]), want) << "bits " << bits << " group " << group << " row " << r;
          }
        }
      }
    }
  });
}

TEST(CpuKernels, Bf16OneTokenMatchesDoubleAlignedAndNot) {
  // The AVX-512 BF16 kernel runs only on 64-byte aligned rows; both the aligned and the fallback
  // case, and cols with a tail after whole 32-element blocks.
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  std::normal_distribution<float> nd;
  for_each_isa([&](Isa) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{33, 576}, {7, 64}, {5, 100}, {3, 32}, {17, 1536}}) {
      for (size_t offset : {size_t{0}, size_t{2}, size_t{32}}) {
        Buffer buf(size_t(rows * cols) * 2, offset);
        auto* w = static_cast<uint16_t*>(buf.data);
        std::vector<float> exact(size_t(rows * cols));
        for (size_t i = 0; i < exact.size(); ++i) {
          w[i] = f32_to_bf16(nd(c.gen));
          exact[i] = bf16_to_f32(w[i]);
        }
        auto lin = Linear::dense(buf.view(DType::kBF16, {rows, cols}, "b.weight"));
        ASSERT_TRUE(lin);
        std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows), NAN);
        for (auto& v : x) v = nd(c.gen);
        lin->forward_rows(x.data(), 1, y.data(), rows, 0, rows);
        SCOPED_TRACE("cols " + std::to_string(cols) + " offset " + std::to_string(offset));
        expect_rows_close(*lin, exact, x, y);
      }
    }
  });
}

TEST(CpuKernels, IsaResultsAgree) {
  // Same weights and input through each instruction set: only the summation order may differ.
  if (!isa_supported(Isa::kAvx512)) GTEST_SKIP() << "host has no AVX-512; only the baseline kernels run";
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  std::normal_distribution<float> nd;
  Packed p = make_packed(c.gen, 4, 61, 576, 64, DType::kBF16);
  std::vector<float> x(576);
  for (auto& v : x) v = nd(c.gen);
  std::vector<std::vector<float>> ys;
  for_each_isa([&](Isa) {
    ys.emplace_back(61, NAN);
    p.lin.forward_rows(x.data(), 1, ys.back().data(), 61, 0, 61);
  });
  ASSERT_EQ(ys.size(), 2u);
  for (size_t r = 0; r < 61; ++r) EXPECT_NEAR(ys[0][r], ys[1][r], 1e-5 * (std::abs(ys[0][r]) + 1.0f)) << r;
}

TEST(CpuKernels, RunPhasesRunsEveryItemOnceWhenThreadsAreUneven) {
  // Items of very different cost (some sleep) so that participants run dry at different times and
  // steal from each other; every item must run exactly once and phase p + 1 only after phase p.
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::uniform_int_distribution<int64_t> nd(0, 70);
    std::vector<int64_t> items(12);
    for (auto& n : items) n = nd(c.gen);
    items[3] = 1;
    items[5] = 0;
    std::vector<std::unique_ptr<std::atomic<int>[]>> runs;
    for (int64_t n : items) {
      runs.emplace_back(new std::atomic<int>[size_t(std::max<int64_t>(n, 1))]);
      for (int64_t i = 0; i < n; ++i) runs.back()[size_t(i)].store(0);
    }
    std::atomic<size_t> highest_phase{0};
    std::atomic<bool> order_ok{true};
    std::uniform_int_distribution<int> slow(0, 9);
    std::vector<int> sleepy(200);
    for (auto& v : sleepy) v = slow(c.gen) == 0;
    run_phases(items, [&](size_t p, int64_t i) {
      // Every earlier phase is complete when an item of phase p runs.
      for (size_t q = 0; q < p; ++q)
        for (int64_t k = 0; k < items[q]; ++k)
          if (runs[q][size_t(k)].load() != 1) order_ok = false;
      if (sleepy[size_t(i) % sleepy.size()]) std::this_thread::sleep_for(std::chrono::microseconds(200));
      runs[p][size_t(i)].fetch_add(1);
      size_t h = highest_phase.load();
      while (h < p && !highest_phase.compare_exchange_weak(h, p)) {
      }
    }, &pool);
    EXPECT_TRUE(order_ok.load()) << threads << " threads";
    for (size_t p = 0; p < items.size(); ++p)
      for (int64_t i = 0; i < items[p]; ++i)
        ASSERT_EQ(runs[p][size_t(i)].load(), 1) << "phase " << p << " item " << i << ", " << threads << " threads";
  }
}

}  // namespace
}  // namespace rtnq::cpu
