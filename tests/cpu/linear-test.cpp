// Linear layers for every weight encoding against a naive double-precision matmul of the exact
// weight values, on fresh random inputs, odd shapes and several token counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "core/thread-pool.h"
#include "cpu/linear.h"
#include "quant/pack.h"
#include "rtnq/dtype.h"

namespace rtnq::cpu {
namespace {

// compressed-tensors pack-quantized, restated independently: element j of a row goes to word
// j / (32/bits) at bit (j % (32/bits)) * bits, stored as q + 2^(bits-1).
std::vector<int32_t> pack_ref(const std::vector<int>& q, int64_t rows, int64_t cols, int bits) {
  const int64_t pf = 32 / bits, wpr = cols / pf;
  std::vector<int32_t> out(static_cast<size_t>(rows * wpr), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t u = uint32_t(q[size_t(r * cols + c)] + (1 << (bits - 1)));
      auto& w = reinterpret_cast<uint32_t&>(out[size_t(r * wpr + c / pf)]);
      w |= u << ((c % pf) * bits);
    }
  return out;
}

template <typename T>
TensorView view_of(std::shared_ptr<std::vector<T>> buf, DType dt, Shape shape, std::string name) {
  TensorView v;
  v.info = {std::move(name), dt, std::move(shape)};
  v.data = buf->data();
  v.keepalive = std::shared_ptr<const void>(buf, buf->data());
  return v;
}

struct Case {
  uint32_t seed = std::random_device{}();
  std::mt19937 gen{seed};
};

// y = x W^T in double from the fp32 weight values `w` [rows, cols].
std::vector<double> matmul_ref(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int64_t rows,
                               int64_t cols) {
  std::vector<double> y(static_cast<size_t>(n * rows));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < cols; ++c) acc += double(x[size_t(t * cols + c)]) * w[size_t(r * cols + c)];
      y[size_t(t * rows + r)] = acc;
    }
  return y;
}

// fp32 accumulation error bound: a few ulps times sum |x||w| (not |y|, which can cancel).
void expect_matmul_close(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& y,
                         int64_t n, int64_t rows, int64_t cols) {
  auto want = matmul_ref(x, w, n, rows, cols);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double mag = 0;
      for (int64_t c = 0; c < cols; ++c) mag += std::abs(double(x[size_t(t * cols + c)]) * w[size_t(r * cols + c)]);
      ASSERT_NEAR(y[size_t(t * rows + r)], want[size_t(t * rows + r)], 1e-6 * mag + 1e-30)
          << "token " << t << " row " << r;
    }
}

TEST(CpuLinear, DenseAllDtypesMatchDouble) {
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  ThreadPool pool(2);
  std::normal_distribution<float> nd;
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {5, 13}, {67, 64}, {130, 577}}) {
    for (int64_t n : {1, 3, 8}) {
      std::vector<float> w(static_cast<size_t>(rows * cols)), x(size_t(n * cols));
      for (auto& v : w) v = nd(c.gen);
      for (auto& v : x) v = nd(c.gen);
      for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
        TensorView view;
        std::vector<float> exact(w.size());
        if (dt == DType::kF32) {
          view = view_of(std::make_shared<std::vector<float>>(w), dt, {rows, cols}, "w");
          exact = w;
        } else {
          auto buf = std::make_shared<std::vector<uint16_t>>(w.size());
          for (size_t i = 0; i < w.size(); ++i) {
            (*buf)[i] = dt == DType::kBF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
            exact[i] = dt == DType::kBF16 ? bf16_to_f32((*buf)[i]) : f16_to_f32((*buf)[i]);
          }
          view = view_of(buf, dt, {rows, cols}, "w");
        }
        auto lin = Linear::dense(view);
        ASSERT_TRUE(lin) << lin.status().to_string();
        std::vector<float> y(static_cast<size_t>(n * rows), NAN);
        lin->forward(x.data(), n, y.data(), &pool);
        expect_matmul_close(x, exact, y, n, rows, cols);
        std::vector<float> y1(static_cast<size_t>(n * rows), NAN);
        lin->forward(x.data(), n, y1.data(), nullptr);
        EXPECT_EQ(y, y1) << "threaded and single-threaded results differ";
      }
    }
  }
}

TEST(CpuLinear, PackedInt4Int8MatchDouble) {
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  ThreadPool pool(2);
  std::normal_distribution<float> nd;
  for (int bits : {4, 8}) {
    for (auto [rows, cols, group] : {std::tuple<int64_t, int64_t, int64_t>{3, 32, 32}, {37, 256, 64},
                                     {64, 576, 576}, {9, 1536, 128}, {5, 40, 8}}) {
      const int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
      std::uniform_int_distribution<int> qd(lo, hi);
      std::vector<int> q(static_cast<size_t>(rows * cols));
      for (auto& v : q) v = qd(c.gen);
      const int64_t ng = cols / group;
      for (DType sdt : {DType::kBF16, DType::kF16, DType::kF32}) {
        std::vector<float> s(static_cast<size_t>(rows * ng));
        auto sbuf = std::make_shared<std::vector<uint8_t>>(s.size() * dtype_size(sdt));
        for (auto& v : s) v = std::abs(nd(c.gen)) * 0.01f + 1e-4f;
        // Round the scales to their dtype so the exact weight is q * s.
        for (auto& v : s) v = round_to_dtype(v, sdt);
        convert_from_f32(s.data(), sdt, sbuf->data(), s.size());
        std::vector<float> exact(q.size());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < cols; ++k)
            exact[size_t(r * cols + k)] = float(q[size_t(r * cols + k)]) * s[size_t(r * ng + k / group)];
        auto pbuf = std::make_shared<std::vector<int32_t>>(pack_ref(q, rows, cols, bits));
        auto lin = Linear::packed(view_of(pbuf, DType::kI32, {rows, cols * bits / 32}, "p.weight_packed"),
                                  view_of(sbuf, sdt, {rows, ng}, "p.weight_scale"), rows, cols);
        ASSERT_TRUE(lin) << lin.status().to_string();
        EXPECT_EQ(lin->bits(), bits);
        EXPECT_EQ(lin->group_size(), group);
        std::vector<float> deq(exact.size());
        lin->dequantize(0, rows, deq.data());
        ASSERT_EQ(deq, exact) << "bits " << bits << " group " << group;
        for (int64_t n : {1, 2, 5}) {
          std::vector<float> x(static_cast<size_t>(n * cols)), y(size_t(n * rows), NAN);
          for (auto& v : x) v = nd(c.gen);
          lin->forward(x.data(), n, y.data(), &pool);
          expect_matmul_close(x, exact, y, n, rows, cols);
        }
      }
    }
  }
}

// A packed linear with random q and scales (BF16), and the exact fp32 weights it stands for.
struct RandomPacked {
  Linear lin;
  std::vector<float> exact;
};
RandomPacked random_packed(std::mt19937& gen, int bits, int64_t rows, int64_t cols, int64_t group) {
  std::uniform_int_distribution<int> qd(q_min(bits), q_max(bits));
  std::normal_distribution<float> nd;
  std::vector<int> q(static_cast<size_t>(rows * cols));
  for (auto& v : q) v = qd(gen);
  const int64_t ng = cols / group;
  auto sbuf = std::make_shared<std::vector<uint16_t>>(static_cast<size_t>(rows * ng));
  for (auto& v : *sbuf) v = f32_to_bf16(std::abs(nd(gen)) * 0.01f + 1e-4f);
  RandomPacked out;
  out.exact.resize(q.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      out.exact[size_t(r * cols + k)] = float(q[size_t(r * cols + k)]) * bf16_to_f32((*sbuf)[size_t(r * ng + k / group)]);
  auto pbuf = std::make_shared<std::vector<int32_t>>(pack_ref(q, rows, cols, bits));
  auto lin = Linear::packed(view_of(pbuf, DType::kI32, {rows, cols * bits / 32}, "r.weight_packed"),
                            view_of(sbuf, DType::kBF16, {rows, ng}, "r.weight_scale"), rows, cols);
  EXPECT_TRUE(lin) << lin.status().to_string();
  out.lin = std::move(*lin);
  return out;
}

TEST(CpuLinear, OneTokenRowBlocksAreSplitInvariant) {
  // The one-token kernels run 1-4 rows at a time; a row's result must not depend on which block
  // (or thread) it landed in, so every split of the rows gives bit-identical outputs.
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  std::normal_distribution<float> nd;
  for (int bits : {4, 8, 16}) {
    for (auto [rows, cols, group] : {std::tuple<int64_t, int64_t, int64_t>{1, 64, 32}, {2, 128, 64}, {3, 96, 32},
                                     {6, 576, 64}, {7, 256, 128}, {43, 576, 64}, {11, 1536, 1536}, {10, 48, 16}}) {
      if (bits == 4 && group % 8 != 0) continue;
      Linear lin;
      std::vector<float> exact;
      if (bits == 16) {
        auto buf = std::make_shared<std::vector<uint16_t>>(static_cast<size_t>(rows * cols));
        exact.resize(buf->size());
        for (size_t i = 0; i < buf->size(); ++i) {
          (*buf)[i] = f32_to_bf16(nd(c.gen));
          exact[i] = bf16_to_f32((*buf)[i]);
        }
        auto l = Linear::dense(view_of(buf, DType::kBF16, {rows, cols}, "h.weight"));
        ASSERT_TRUE(l) << l.status().to_string();
        lin = std::move(*l);
      } else {
        auto rp = random_packed(c.gen, bits, rows, cols, group);
        lin = std::move(rp.lin);
        exact = std::move(rp.exact);
      }
      std::vector<float> x(static_cast<size_t>(cols)), whole(size_t(rows), NAN);
      for (auto& v : x) v = nd(c.gen);
      lin.forward_rows(x.data(), 1, whole.data(), rows, 0, rows);
      expect_matmul_close(x, exact, whole, 1, rows, cols);
      for (int rep = 0; rep < 4; ++rep) {
        std::vector<float> split(size_t(rows), NAN);
        std::uniform_int_distribution<int64_t> step(1, 5);
        for (int64_t r0 = 0; r0 < rows;) {
          const int64_t r1 = std::min(rows, r0 + step(c.gen));
          lin.forward_rows(x.data(), 1, split.data(), rows, r0, r1);
          r0 = r1;
        }
        ASSERT_EQ(split, whole) << "bits " << bits << " rows " << rows << " cols " << cols;
      }
    }
  }
}

TEST(CpuLinear, RowItemsMatchRunLinears) {
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  std::normal_distribution<float> nd;
  auto a = random_packed(c.gen, 4, 70, 128, 32);
  auto b = random_packed(c.gen, 8, 33, 128, 64);
  std::vector<float> x(128), ya(70, NAN), yb(33, NAN), za(70, NAN), zb(33, NAN);
  for (auto& v : x) v = nd(c.gen);
  const LinearJob want[] = {{&a.lin, x.data(), ya.data()}, {&b.lin, x.data(), yb.data()}};
  run_linears(want, 1, nullptr);
  const LinearJob got[] = {{&a.lin, x.data(), za.data()}, {&b.lin, x.data(), zb.data()}};
  const int64_t items = count_row_items(got, 16);
  EXPECT_EQ(items, 5 + 3);
  for (int64_t i = items - 1; i >= 0; --i) run_row_item(got, 16, i);
  EXPECT_EQ(za, ya);
  EXPECT_EQ(zb, yb);
}

TEST(CpuLinear, RunPhasesOrdersPhases) {
  // Phase p item i reads every item of phase p - 1, so a phase started early would see NaNs.
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  std::uniform_int_distribution<int64_t> nd(0, 40);
  for (int threads : {0, 1, 2, 3}) {
    std::vector<int64_t> items(60);
    for (auto& v : items) v = nd(c.gen);
    items[0] = std::max<int64_t>(items[0], 1);
    std::vector<std::vector<double>> val(items.size());
    for (size_t p = 0; p < items.size(); ++p) val[p].assign(size_t(items[p]), NAN);
    auto fn = [&](size_t p, int64_t i) {
      double prev = 1.0;
      for (size_t q = p; q-- > 0;)
        if (!val[q].empty()) {
          prev = 0;
          for (double v : val[q]) prev += v;
          break;
        }
      val[p][size_t(i)] = prev * 0.5 + double(i);
    };
    std::unique_ptr<ThreadPool> pool = threads > 0 ? std::make_unique<ThreadPool>(threads) : nullptr;
    run_phases(items, fn, pool.get());
    // The same recurrence, sequentially.
    double prev = 1.0;
    for (size_t p = 0; p < items.size(); ++p) {
      if (items[p] == 0) continue;
      double sum = 0;
      for (int64_t i = 0; i < items[p]; ++i) {
        const double want = prev * 0.5 + double(i);
        ASSERT_EQ(val[p][size_t(i)], want) << "threads " << threads << " phase " << p << " item " << i;
        sum += want;
      }
      prev = sum;
    }
  }
}

TEST(CpuLinear, DequantizeMatchesQuantModuleOracle) {
  // The quant module's pack_int32 / dequantize_rows define the checkpoint values; the engine's
  // vectorised dequantization must reproduce them bit for bit, odd (padded) widths included.
  Case c;
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  for (int bits : {4, 8}) {
    for (auto [rows, cols, group] : {std::tuple<int64_t, int64_t, int64_t>{7, 128, 32}, {3, 576, -1}, {4, 21, -1}}) {
      std::uniform_int_distribution<int> qd(q_min(bits), q_max(bits));
      std::vector<int8_t> q(static_cast<size_t>(rows * cols));
      for (auto& v : q) v = int8_t(qd(c.gen));
      const int64_t g = effective_group(group, cols), ng = cols / g;
      auto pbuf = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(rows * packed_row_words(cols, bits)));
      pack_int32(q.data(), rows, cols, bits, pbuf->data());
      auto sbuf = std::make_shared<std::vector<uint16_t>>(static_cast<size_t>(rows * ng));
      std::normal_distribution<float> nd;
      for (auto& v : *sbuf) v = f32_to_bf16(std::abs(nd(c.gen)) * 0.02f);
      std::vector<float> want(static_cast<size_t>(rows * cols)), got(want.size());
      dequantize_rows(pbuf->data(), sbuf->data(), DType::kBF16, rows, cols, bits, group, want.data());
      auto lin = Linear::packed(view_of(pbuf, DType::kI32, {rows, packed_row_words(cols, bits)}, "o.weight_packed"),
                                view_of(sbuf, DType::kBF16, {rows, ng}, "o.weight_scale"), rows, cols);
      ASSERT_TRUE(lin) << lin.status().to_string();
      lin->dequantize(0, rows, got.data());
      EXPECT_EQ(got, want) << "bits " << bits << " cols " << cols;
    }
  }
}

TEST(CpuLinear, HandPackedInt4Word) {
  // One row of 8 INT4 values q = [-8, -1, 0, 1, 2, 3, 7, -3] stored as q + 8 = [0, 7, 8, 9, 10, 11, 15, 5],
  // nibble j at bits 4j: 0x5FBA9870. Scale 0.5.
  auto p = std::make_shared<std::vector<int32_t>>(std::vector<int32_t>{int32_t(0x5FBA9870u)});
  auto s = std::make_shared<std::vector<float>>(std::vector<float>{0.5f});
  auto lin = Linear::packed(view_of(p, DType::kI32, {1, 1}, "h.weight_packed"), view_of(s, DType::kF32, {1, 1}, "h.weight_scale"), 1, 8);
  ASSERT_TRUE(lin) << lin.status().to_string();
  std::vector<float> w(8);
  lin->dequantize(0, 1, w.data());
  EXPECT_EQ(w, (std::vector<float>{-4.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f, 3.5f, -1.5f}));
}

TEST(CpuLinear, RejectsBadShapes) {
  auto p = std::make_shared<std::vector<int32_t>>(24, 0);
  auto s = std::make_shared<std::vector<float>>(4, 1.0f);
  // 6 words per row of 40 inputs is 4.8 bits: neither INT4 nor INT8.
  auto bad = Linear::packed(view_of(p, DType::kI32, {4, 6}, "m.weight_packed"), view_of(s, DType::kF32, {4, 1}, "m.weight_scale"), 4, 40);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("m.weight_packed"), std::string::npos) << bad.status().message();
  auto f = std::make_shared<std::vector<int32_t>>(4, 0);
  auto wrong_dtype = Linear::dense(view_of(f, DType::kI32, {2, 2}, "x.weight"));
  ASSERT_FALSE(wrong_dtype);
  EXPECT_NE(wrong_dtype.status().message().find("x.weight"), std::string::npos);
  auto wrong_rank = Linear::dense(view_of(std::make_shared<std::vector<float>>(4, 1.0f), DType::kF32, {4}, "v.weight"));
  EXPECT_FALSE(wrong_rank);
}

}  // namespace
}  // namespace rtnq::cpu
