// bench-gemm: the mixed-precision GEMM against cuBLAS on the same card, same run.
//
// For each shape (Llama-3 8B, 70B and 405B linears, SmolLM2-135M) and m: microseconds of the fused INT4 and INT8
// kernels, of the dense path (dequantize + cuBLAS) and of plain cuBLAS BF16 / FP16 on unquantized weights;
// achieved GB/s, % of the HBM roofline (bytes that must move / copy bandwidth measured here), TFLOP/s and the
// speed-up over cuBLAS. Times: CUDA graph of back-to-back launches over rotated weight copies (working set
// above 3x L2, so the cache is never warm from the previous call), median of the replays.
// Usage: bench-gemm [out_dir] [--quick] [--decode-only] [--swap-only] [--no-variants] [--hot] [--ms M1,M2,..]
//                   [--shapes 8B,70B,..] [--one K,N,M[,NT[,CLUSTER]]] [--one-wide K,N,M[,SPLIT[,TOK]]]
//                   [--wide-sweep K,N,M[,TOK]] [--wide-ab K,N,M[,TOK]] [--cross K,N[,BITS] [--ms M1,M2,..]]
//                   [--soak SECONDS [--shapes ..] [--ms ..]] [--tail-ab K,N [--ms ..]]
//   (writes out_dir/gemm.md and out_dir/gemm.json)
//   --decode-only: only the decode-kernel variants table (m = 1, 4, 16), for quick A/B runs;
//   --swap-only: only the swapped-operand kernel's variants table (m = 1..256, or those of --ms);
//   --one K,N,M[,NT[,CLUSTER]]: just three eager INT4 gemm_quant calls on one shape (for a profiler), then exit
//   (NT: swap_tokens, CLUSTER: swap_cluster); --one-wide: the same with the wide kernel forced (SPLIT: wide_split,
//   TOK: wide_tokens); --wide-sweep K,N,M[,TOK]: graph-timed INT4 calls of the wide kernel (token tile TOK, 0 its
//   own choice) at each split, beside auto and the swapped-operand kernel; --wide-ab K,N,M[,TOK]: its auto choice,
//   the split rule without stream-K and stream-K forced, interleaved; --cross K,N[,BITS]: the fused call (INT4, or
//   INT8) against cuBLAS BF16 on a kept dense copy and against dequantize + cuBLAS at each m (of --ms, or 8-1024),
//   interleaved: both dual paths' crossovers measured on this card, beside the library's defaults;
//   --soak SECONDS: each model's layer (8B unless --shapes) per path (cuBLAS BF16, fused INT4, fused INT8) replayed
//   for SECONDS at each m (of --ms, or 256 and 4096): time, power, energy per layer and the SM clock from NVML
//   (soak_layers); --tail-ab K,N: auto just above multiples of 128 tokens with the short tail in the same call, in a
//   call of its own, and as the library's rule decides (tail_ab);
//   --no-variants: skip both variants tables; --ms: the m values of the main table; --shapes: only these models;
//   --hot: no weight rotation (weights that fit stay in L2: the per-call cost without the DRAM stream);
//   --trace K,N,M[,NT[,CLUSTER]] (builds with -DRTNQ_SWAP_TRACE only): one graph of back-to-back INT4 calls over
//   rotated weights, and where each call's time goes, from per-block timestamps of the swapped-operand kernel; for
//   calls 1-3 also the blocks grouped by how many blocks of the call shared their SM.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "power.h"
#include "cuda/gemm.h"
#include "cuda/wide-split.h"

namespace {

using rtnq::DType;
namespace rc = rtnq::cuda;

#define BENCH_CHECK(expr)                                                                              \
  do {                                                                                                 \
    const cudaError_t _e = (expr);                                                                     \
    if (_e != cudaSuccess) {                                                                           \
      std::fprintf(stderr, "%s:%d: %s: %s %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(_e),   \
                   rc::gemm_error_message());                                                          \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

cudaStream_t g_stream;

// One call pattern captured as a CUDA graph: launch(i) back to back, i cycling over `copies` buffer sets, `reps`
// calls (enough for ~2 ms, a multiple of copies).
struct TimedGraph {
  cudaGraphExec_t exec = nullptr;
  int reps = 0;
};
TimedGraph capture_graph(const std::function<void(int)>& launch, int copies) {
  for (int i = 0; i < copies; ++i) launch(i);  // warm-up outside capture (lazy init, attributes)
  BENCH_CHECK(cudaStreamSynchronize(g_stream));
  cudaEvent_t e0, e1;
  BENCH_CHECK(cudaEventCreate(&e0));
  BENCH_CHECK(cudaEventCreate(&e1));
  BENCH_CHECK(cudaEventRecord(e0, g_stream));
  launch(0);
  BENCH_CHECK(cudaEventRecord(e1, g_stream));
  BENCH_CHECK(cudaEventSynchronize(e1));
  float est_ms = 0;
  BENCH_CHECK(cudaEventElapsedTime(&est_ms, e0, e1));
  BENCH_CHECK(cudaEventDestroy(e0));
  BENCH_CHECK(cudaEventDestroy(e1));
  TimedGraph g;
  g.reps = std::clamp(int(2.0 / std::max(est_ms, 1e-4f)), 2, 200);
  g.reps = std::max(copies, (g.reps + copies - 1) / copies * copies);
  cudaGraph_t graph;
  BENCH_CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
  for (int r = 0; r < g.reps; ++r) launch(r % copies);
  BENCH_CHECK(cudaStreamEndCapture(g_stream, &graph));
  BENCH_CHECK(cudaGraphInstantiate(&g.exec, graph, 0));
  BENCH_CHECK(cudaGraphDestroy(graph));
  BENCH_CHECK(cudaGraphLaunch(g.exec, g_stream));  // the first replay uploads the graph
  return g;
}

// The median of a few timings (NaN for none): what every repeated or interleaved timing here reports.
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? std::nan("") : v[v.size() / 2];
}

// Median per-call microseconds of several call patterns, their graph replays interleaved: `rounds` rounds, each
// replaying every graph once in a shuffled order (a fixed seed). From 64 tokens the calls draw the card to its power
// cap, and a replay's clock then depends on what ran just before it: timed one after another, or in a fixed
// rotation, a column that always followed cuBLAS read up to 30% slow (H200, twentieth session: the dual path's fused
// call at m = 128 against the identical call of the INT4 column). Shuffled, each column follows each other one
// about equally often.
std::vector<double> time_graphs(const std::vector<std::function<void(int)>>& launches, const std::vector<int>& copies,
                                int rounds = 9) {
  const size_t n = launches.size();
  std::vector<TimedGraph> graphs;
  for (size_t v = 0; v < n; ++v) graphs.push_back(capture_graph(launches[v], copies[v]));
  std::vector<cudaEvent_t> ev(2 * n);
  for (auto& e : ev) BENCH_CHECK(cudaEventCreate(&e));
  std::vector<std::vector<double>> per_call(n);
  std::vector<size_t> order(n);
  for (size_t v = 0; v < n; ++v) order[v] = v;
  std::mt19937 rng(20261128);
  for (int r = 0; r < rounds; ++r) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t v : order) {
      BENCH_CHECK(cudaEventRecord(ev[2 * v], g_stream));
      BENCH_CHECK(cudaGraphLaunch(graphs[v].exec, g_stream));
      BENCH_CHECK(cudaEventRecord(ev[2 * v + 1], g_stream));
    }
    BENCH_CHECK(cudaStreamSynchronize(g_stream));
    for (size_t v = 0; v < n; ++v) {
      float ms = 0;
      BENCH_CHECK(cudaEventElapsedTime(&ms, ev[2 * v], ev[2 * v + 1]));
      per_call[v].push_back(1000.0 * ms / graphs[v].reps);
    }
  }
  for (auto& e : ev) BENCH_CHECK(cudaEventDestroy(e));
  std::vector<double> us(n);
  for (size_t v = 0; v < n; ++v) {
    BENCH_CHECK(cudaGraphExecDestroy(graphs[v].exec));
    us[v] = median(per_call[v]);
  }
  return us;
}

// Median per-call microseconds of launch(i), i cycling over `copies` buffer sets, inside a CUDA graph.
double time_graph(const std::function<void(int)>& launch, int copies) { return time_graphs({launch}, {copies})[0]; }

// A plain 16-byte-per-thread copy kernel: what a streaming kernel can reach (cudaMemcpy D2D reads lower).
__global__ void copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

double copy_bandwidth_gbs() {
  const size_t bytes = size_t(1) << 30;
  void *a, *b;
  BENCH_CHECK(cudaMalloc(&a, bytes));
  BENCH_CHECK(cudaMalloc(&b, bytes));
  BENCH_CHECK(cudaMemset(a, 1, bytes));
  const double us_memcpy =
      time_graph([&](int) { BENCH_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, g_stream)); }, 1);
  const double us_kernel = time_graph([&](int) {
    copy_kernel<<<132 * 16, 256, 0, g_stream>>>(static_cast<const uint4*>(a), static_cast<uint4*>(b), bytes / 16);
    BENCH_CHECK(cudaGetLastError());
  }, 1);
  std::printf("# copy 1 GiB: cudaMemcpyAsync %.0f GB/s, copy kernel %.0f GB/s (read+write)\n",
              2.0 * double(bytes) / (us_memcpy * 1e3), 2.0 * double(bytes) / (us_kernel * 1e3));
  // The roofline uses the copy kernel: it is what a streaming kernel reaches (cudaMemcpy reads ~15% lower).
  const double us = us_kernel;
  BENCH_CHECK(cudaFree(a));
  BENCH_CHECK(cudaFree(b));
  return 2.0 * double(bytes) / (us * 1e3);  // read + write
}

struct Shape {
  const char* model;
  const char* name;
  int64_t k, n;
};

struct Row {
  std::string model, name;
  int64_t k, n, m;
  double us_q4_t16 = 0, us_q4_t64 = 0;  // the tiled kernel with forced 16- / 64-row m tiles (m in 32..256)
  double us_q4_decode = 0;              // the decode kernel forced (m <= 16), next to auto's swapped-operand kernel
  double us_q4 = 0, us_q8 = 0, us_dense4 = 0, us_bf16 = 0, us_fp16 = 0;
  double us_auto = 0;  // gemm_auto_cached at the default crossover (fused, or cuBLAS on the kept dense copy)
  double us_auto_dq = 0;  // gemm_auto at its default crossover (fused, or dequantize + cuBLAS every call)
  double bytes_q4 = 0, bytes_q8 = 0, flops = 0;
};

void fill_random(void* dst, size_t halves, DType t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<uint16_t> h(halves);
  for (auto& x : h) {
    const float f = d(rng);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    x = t == DType::kBF16 ? uint16_t(u >> 16) : uint16_t(0);
    if (t == DType::kF16) {
      // fp16 of a value in [-1, 1]: exponent rebias, mantissa truncated (good enough for timing data).
      const uint32_t sign = (u >> 16) & 0x8000u;
      const int exp = int((u >> 23) & 0xff) - 127 + 15;
      x = exp <= 0 ? uint16_t(sign) : uint16_t(sign | (uint32_t(exp) << 10) | ((u >> 13) & 0x3ffu));
    }
  }
  BENCH_CHECK(cudaMemcpy(dst, h.data(), halves * 2, cudaMemcpyHostToDevice));
}

// Random packed checkpoint on the device, repacked into `copies` weights.
std::vector<rc::RepackedWeight> make_weights(int64_t n, int64_t k, int bits, int copies, uint64_t seed) {
  const int64_t row_words = (k * bits + 31) / 32, groups = (k + 127) / 128;
  std::vector<int32_t> packed(size_t(n * row_words));
  std::mt19937_64 rng(seed);
  for (auto& w : packed) w = int32_t(rng());
  int32_t* d_packed;
  void* d_scales;
  BENCH_CHECK(cudaMalloc(&d_packed, packed.size() * 4));
  BENCH_CHECK(cudaMalloc(&d_scales, size_t(n * groups) * 2));
  BENCH_CHECK(cudaMemcpy(d_packed, packed.data(), packed.size() * 4, cudaMemcpyHostToDevice));
  fill_random(d_scales, size_t(n * groups), DType::kBF16, seed + 1);
  std::vector<rc::RepackedWeight> out(copies);
  for (auto& w : out) {
    BENCH_CHECK(rc::repacked_weight_alloc(n, k, bits, 128, DType::kBF16, &w));
    BENCH_CHECK(rc::repack_weight(d_packed, d_scales, &w, g_stream));
  }
  BENCH_CHECK(cudaStreamSynchronize(g_stream));
  BENCH_CHECK(cudaFree(d_packed));
  BENCH_CHECK(cudaFree(d_scales));
  return out;
}

// `copies` random BF16 [n, k] weights on the device: the dense copies cuBLAS is timed on.
std::vector<void*> make_dense_copies(int64_t n, int64_t k, int copies) {
  std::vector<void*> dense(copies);
  for (auto& d : dense) {
    BENCH_CHECK(cudaMalloc(&d, size_t(n * k) * 2));
    fill_random(d, size_t(n * k), DType::kBF16, 13);
  }
  return dense;
}

// The main table's last column: the kernels auto did not pick, where they were timed.
std::string other_kernels(const Row& r) {
  char buf[128];
  if (r.us_q4_decode > 0) {
    std::snprintf(buf, sizeof buf, "decode %.1f", r.us_q4_decode);
    return buf;
  }
  if (r.us_q4_t16 > 0) {
    std::snprintf(buf, sizeof buf, "tiled-16 %.1f, tiled-64 %.1f", r.us_q4_t16, r.us_q4_t64);
    return buf;
  }
  return "-";
}

// --hot: one copy of every weight, so what fits stays in L2 between calls (the fixed cost of a call without
// the DRAM stream; a diagnostic, not a serving condition).
bool g_hot = false;
int copies_for(double bytes, double l2) { return g_hot ? 1 : int(std::clamp(3.0 * l2 / bytes + 1.0, 1.0, 64.0)); }

// The models of these shapes, each once, in their first shape's order (a layer row or soak per model).
std::vector<std::string> models_of(const std::vector<Shape>& shapes) {
  std::vector<std::string> models;
  for (const Shape& s : shapes)
    if (std::find(models.begin(), models.end(), s.model) == models.end()) models.push_back(s.model);
  return models;
}

// One INT4 shape for --one and --trace: `copies` weight copies, a workspace, random activations, and the options
// (NT: swap_tokens, CLUSTER: swap_cluster; auto when 0).
struct OneShape {
  std::vector<rc::RepackedWeight> w;
  rc::GemmWorkspace ws;
  void* a = nullptr;
  void* c = nullptr;
  rc::GemmOptions o;
};
OneShape one_shape(int64_t k, int64_t n, int64_t m, int nt, int cluster, int copies) {
  BENCH_CHECK(cudaStreamCreate(&g_stream));
  OneShape s;
  s.w = make_weights(n, k, 4, copies, 11);
  BENCH_CHECK(rc::gemm_workspace_alloc(m, n, &s.ws, g_stream));
  BENCH_CHECK(cudaMalloc(&s.a, size_t(m * k * 2)));
  BENCH_CHECK(cudaMalloc(&s.c, size_t(m * n * 2)));
  fill_random(s.a, size_t(m * k), DType::kBF16, 14);
  s.o.swap_tokens = nt;
  s.o.swap_cluster = cluster;
  if (nt != 0) s.o.kernel = rc::GemmOptions::Kernel::kSwap;
  return s;
}

// Three eager calls of the fused INT4 kernel on one shape (a profiler's target: nothing else runs); wide: the wide
// kernel forced, `cluster` its split, `wide_tokens` its token tile.
int profile_one(int64_t k, int64_t n, int64_t m, int nt, int cluster, bool wide = false, int wide_tokens = 0) {
  OneShape s = one_shape(k, n, m, wide ? 0 : nt, wide ? 0 : cluster, 1);
  if (wide) {
    s.o.kernel = rc::GemmOptions::Kernel::kWide;
    s.o.wide_split = cluster;
    s.o.wide_tokens = wide_tokens;
  }
  for (int i = 0; i < 3; ++i) BENCH_CHECK(rc::gemm_quant(s.a, s.w[0], s.c, m, s.ws, g_stream, s.o));
  BENCH_CHECK(cudaStreamSynchronize(g_stream));
  std::printf("profile_one k=%lld n=%lld m=%lld: done\n", (long long)k, (long long)n, (long long)m);
  return 0;
}

// --wide-sweep K,N,M[,TOK]: graph-timed INT4 calls (weights rotated past L2) of the wide kernel with token tile
// `tokens` (0: its own choice) at every split it can take (stream-K, auto, then 1..8 blocks a tile), next to the
// default kernel choice and the swapped-operand kernel forced: the data behind the wide kernel's split rule and its
// place in the dispatcher.
int wide_sweep(int64_t k, int64_t n, int64_t m, int tokens) {
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  const int copies = copies_for(double(n) * k / 2, prop.l2CacheSize);
  OneShape s = one_shape(k, n, m, 0, 0, copies);
  auto t = [&](rc::GemmOptions o) {
    return time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(s.a, s.w[i], s.c, m, s.ws, g_stream, o)); }, copies);
  };
  rc::GemmOptions swap;
  swap.kernel = rc::GemmOptions::Kernel::kSwap;
  std::printf("k=%lld n=%lld m=%lld: auto %.1f, swap %.1f, wide (tokens %d):", (long long)k, (long long)n,
              (long long)m, t({}), t(swap), tokens);
  for (int split = rc::kWideStreamK; split <= 8 && split * 64 <= k; ++split) {
    rc::GemmOptions o;
    o.kernel = rc::GemmOptions::Kernel::kWide;
    o.wide_split = split;
    o.wide_tokens = tokens;
    const std::string label =
        split == 0 ? "auto " : split == rc::kWideStreamK ? "stream-K " : std::to_string(split) + ": ";
    std::printf(" %s%.1f", label.c_str(), t(o));
  }
  std::printf(" us\n");
  return 0;
}

// --wide-ab K,N,M[,TOK]: the wide kernel's k splits against each other, their graph replays interleaved
// (time_graphs): the auto choice (named), the split rule without stream-K, and stream-K forced.
int wide_ab(int64_t k, int64_t n, int64_t m, int tokens) {
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  const int copies = copies_for(double(n) * k / 2, prop.l2CacheSize);
  OneShape s = one_shape(k, n, m, 0, 0, copies);
  constexpr int kV = 3;
  rc::GemmOptions o[kV];
  for (int v = 0; v < kV; ++v) {
    o[v].kernel = rc::GemmOptions::Kernel::kWide;
    o[v].wide_tokens = tokens;
  }
  o[1].wide_auto_streamk = false;
  o[2].wide_split = rc::kWideStreamK;
  auto name = [&](const rc::GemmOptions& opt) {
    const int split = rc::gemm_wide_split_for(s.w[0], m, s.ws, opt);
    return split == rc::kWideStreamK ? std::string("stream-K") : "split " + std::to_string(split);
  };
  std::vector<std::function<void(int)>> calls;
  for (int v = 0; v < kV; ++v)
    calls.push_back([&, v](int i) { BENCH_CHECK(rc::gemm_quant(s.a, s.w[i], s.c, m, s.ws, g_stream, o[v])); });
  const std::vector<double> us = time_graphs(calls, std::vector<int>(kV, copies));
  const double auto_us = us[0], split_us = us[1], streamk_us = us[2];
  std::printf("k=%lld n=%lld m=%lld tokens %d: auto (%s) %.1f, split rule (%s) %.1f, stream-K %.1f us (auto / split "
              "rule %.3f, stream-K / split rule %.3f)\n",
              (long long)k, (long long)n, (long long)m, tokens, name(o[0]).c_str(), auto_us, name(o[1]).c_str(),
              split_us, streamk_us, auto_us / split_us, streamk_us / split_us);
  return 0;
}

// --tail-ab K,N [--ms LIST]: gemm_quant's auto choice at m just above multiples of 128 tokens, three ways, their graph
// replays interleaved (time_graphs): one call (every token tile 128, the last mostly zeros), the short tail forced
// into a call of its own (up to 64 tokens), and the library's rule (wide_tail_max by weight count). The data behind
// that rule.
int tail_ab(int64_t k, int64_t n, std::vector<int64_t> ms) {
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  if (ms.empty()) ms = {129, 136, 144, 160, 192, 256, 264, 320, 520};
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());
  const int copies = copies_for(double(n) * k / 2, prop.l2CacheSize);
  OneShape s = one_shape(k, n, max_m, 0, 0, copies);
  rc::GemmOptions one, tail, rule;
  one.wide_tail = 0;
  tail.wide_tail = 64;
  std::printf("# --tail-ab k=%lld n=%lld INT4 on %s: us, medians of 9 interleaved timings; the rule splits off tails "
              "of up to %lld tokens here\n",
              (long long)k, (long long)n, prop.name, (long long)rc::detail::wide_tail_max(n * k));
  std::printf("| m | one call | tail call (up to 64) | rule | tail / one |\n|---|---|---|---|---|\n");
  for (int64_t m : ms) {
    auto call = [&](const rc::GemmOptions& o) {
      return [&, o, m](int i) { BENCH_CHECK(rc::gemm_quant(s.a, s.w[i], s.c, m, s.ws, g_stream, o)); };
    };
    const std::vector<double> us = time_graphs({call(one), call(tail), call(rule)}, {copies, copies, copies});
    std::printf("| %lld | %.1f | %.1f | %.1f | %.3f |\n", (long long)m, us[0], us[1], us[2], us[1] / us[0]);
    std::fflush(stdout);
  }
  return 0;
}

// --cross K,N[,BITS] [--ms LIST]: where each dual path should switch on this card for one weight shape. At each m
// three calls are timed with their graph replays interleaved (time_graphs: nine each, shuffled, medians), weights
// rotated past L2: the fused call (gemm_quant's own kernel choice, INT4 or BITS = 8), cuBLAS BF16 on a kept dense
// copy (what gemm_auto_cached runs above its crossover), and dequantize + cuBLAS (gemm_dense: what gemm_auto runs,
// the weight written out dense every call). Prints a row per m, for each path the largest m below which the fused
// kernel always won, and the library's defaults for this card (dense_crossover_m_for, dequant_crossover_m_for), so
// a caller can pass its own to gemm_auto / gemm_auto_cached.
int cross_sweep(int64_t k, int64_t n, int bits, std::vector<int64_t> ms, cublasHandle_t cublas) {
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  if (ms.empty()) ms = {8, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024};
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());
  const double dense_bytes = double(n) * k * 2;
  const int cq = copies_for(double(n) * k * bits / 8, prop.l2CacheSize), cd = copies_for(dense_bytes, prop.l2CacheSize);
  auto wq = make_weights(n, k, bits, cq, 11);
  const std::vector<void*> dense = make_dense_copies(n, k, cd);
  void *a, *c, *scratch;
  BENCH_CHECK(cudaMalloc(&a, size_t(max_m * k * 2)));
  BENCH_CHECK(cudaMalloc(&c, size_t(max_m * n * 2)));
  BENCH_CHECK(cudaMalloc(&scratch, size_t(dense_bytes)));
  fill_random(a, size_t(max_m * k), DType::kBF16, 14);
  rc::GemmWorkspace ws;
  BENCH_CHECK(rc::gemm_workspace_alloc(std::max<int64_t>(max_m, 256), n, &ws, g_stream));
  const double hbm = rc::card_peak_hbm_gbs();
  std::printf("# --cross k=%lld n=%lld INT%d on %s (peak HBM %.0f GB/s): us, medians of 9 interleaved timings\n",
              (long long)k, (long long)n, bits, prop.name, hbm);
  std::printf("| m | fused INT%d | cuBLAS BF16 (kept copy) | dequantize + cuBLAS | fused / kept copy | "
              "fused / dequantize + cuBLAS |\n|---|---|---|---|---|---|\n",
              bits);
  int64_t cross_kept = 0, cross_dq = 0;
  bool lost_kept = false, lost_dq = false;
  for (int64_t m : ms) {
    const std::vector<double> us = time_graphs(
        {[&](int i) { BENCH_CHECK(rc::gemm_quant(a, wq[i], c, m, ws, g_stream)); },
         [&](int i) { BENCH_CHECK(rc::cublas_gemm_nt(a, dense[i], c, m, n, k, DType::kBF16, cublas)); },
         [&](int i) { BENCH_CHECK(rc::gemm_dense(a, wq[i % cq], c, m, scratch, cublas, g_stream)); }},
        {cq, cd, cq});
    const double fused_us = us[0], kept_us = us[1], dq_us = us[2];
    std::printf("| %lld | %.1f | %.1f | %.1f | %.3f | %.3f |\n", (long long)m, fused_us, kept_us, dq_us,
                fused_us / kept_us, fused_us / dq_us);
    std::fflush(stdout);
    if (fused_us > kept_us) lost_kept = true;
    if (!lost_kept) cross_kept = m;
    if (fused_us > dq_us) lost_dq = true;
    if (!lost_dq) cross_dq = m;
  }
  std::printf("measured crossover (the fused kernel wins up to): kept copy %lld, dequantize + cuBLAS %lld; library "
              "defaults on this card: %lld (gemm_auto_cached), %lld (gemm_auto)\n",
              (long long)cross_kept, (long long)cross_dq, (long long)rc::default_dense_crossover_m(n, k, bits),
              (long long)rc::default_dequant_crossover_m(n, k, bits));
  for (auto& w : wq) rc::repacked_weight_free(&w);
  for (auto* d : dense) BENCH_CHECK(cudaFree(d));
  BENCH_CHECK(cudaFree(a));
  BENCH_CHECK(cudaFree(c));
  BENCH_CHECK(cudaFree(scratch));
  rc::gemm_workspace_free(&ws);
  return 0;
}

// --soak SECONDS [--shapes M1,..] [--ms M1,..]: each selected model's layer (its four linears, weights rotated past
// L2) replayed in a CUDA graph for SECONDS per path - cuBLAS BF16, the fused INT4 call (gemm_quant's own choice),
// the fused INT8 call - at each m (default 256 and 4096), after a second of idle. Per path: us per layer, TFLOP/s,
// the card's mean power and energy per layer from NVML's energy counter, pJ per FLOP, the SM clock sampled
// meanwhile and the clock-event reasons seen. What it answers: whether a path runs at the card's power cap, and
// then how much energy per product a faster kernel would have to save (docs/perf-notes.md, twenty-first session).
int soak_layers(const std::vector<Shape>& shapes, std::vector<int64_t> ms, double seconds, cublasHandle_t cublas) {
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  int dev = 0;
  BENCH_CHECK(cudaGetDevice(&dev));
  rtnq::bench::CardPower power(dev);
  if (!power.ok()) std::fprintf(stderr, "bench-gemm --soak: NVML not available: times only\n");
  if (ms.empty()) ms = {256, 4096};
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());
  const std::vector<std::string> models = models_of(shapes);
  const double l2 = prop.l2CacheSize;
  std::printf("# --soak %.1f s a path on %s (%d SMs), power limit %.0f W: a model's 4 linears a call, graph-replayed\n",
              seconds, prop.name, prop.multiProcessorCount, power.limit_w());
  std::printf("| model | m | path | us per layer | TFLOP/s | W | mJ per layer | pJ per FLOP | SM MHz median (min) | "
              "clock-event reasons |\n|---|---|---|---|---|---|---|---|---|---|\n");
  {
    power.begin();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto r = power.end();
    std::printf("| - | - | idle | - | - | %.0f | - | - | %u (%u) | 0x%llx |\n", r.watts(), r.sm_mhz_median,
                r.sm_mhz_min, r.reasons);
  }
  for (const std::string& model : models) {
    struct Linear {
      int64_t k, n;
      int c4, c8, cd;
      std::vector<rc::RepackedWeight> w4, w8;
      std::vector<void*> dense;
    };
    std::vector<Linear> lin;
    for (const Shape& s : shapes) {
      if (model != s.model) continue;
      Linear L{s.k, s.n};
      L.c4 = copies_for(double(s.n) * s.k / 2, l2);
      L.c8 = copies_for(double(s.n) * s.k, l2);
      L.cd = copies_for(double(s.n) * s.k * 2, l2);
      L.w4 = make_weights(s.n, s.k, 4, L.c4, 11);
      L.w8 = make_weights(s.n, s.k, 8, L.c8, 12);
      L.dense = make_dense_copies(s.n, s.k, L.cd);
      lin.push_back(std::move(L));
    }
    int64_t max_k = 0, max_n = 0;
    double params = 0;
    for (const Linear& L : lin) max_k = std::max(max_k, L.k), max_n = std::max(max_n, L.n), params += double(L.k) * L.n;
    void *a, *c;
    BENCH_CHECK(cudaMalloc(&a, size_t(max_m * max_k * 2)));
    BENCH_CHECK(cudaMalloc(&c, size_t(max_m * max_n * 2)));
    fill_random(a, size_t(max_m * max_k), DType::kBF16, 14);
    rc::GemmWorkspace ws;
    BENCH_CHECK(rc::gemm_workspace_alloc(std::max<int64_t>(max_m, 256), max_n, &ws, g_stream));
    for (int64_t m : ms) {
      const double flops = 2.0 * double(m) * params;
      const std::vector<std::pair<std::string, std::function<void(int)>>> paths = {
          {"cuBLAS BF16",
           [&](int i) {
             for (const Linear& L : lin)
               BENCH_CHECK(rc::cublas_gemm_nt(a, L.dense[i % L.cd], c, m, L.n, L.k, DType::kBF16, cublas));
           }},
          {"fused INT4",
           [&](int i) {
             for (const Linear& L : lin) BENCH_CHECK(rc::gemm_quant(a, L.w4[i % L.c4], c, m, ws, g_stream));
           }},
          {"fused INT8",
           [&](int i) {
             for (const Linear& L : lin) BENCH_CHECK(rc::gemm_quant(a, L.w8[i % L.c8], c, m, ws, g_stream));
           }}};
      int copies = 1;
      for (const Linear& L : lin) copies = std::lcm(copies, std::lcm(L.c4, std::lcm(L.c8, L.cd)));
      copies = std::min(copies, 64);
      for (const auto& [name, launch] : paths) {
        const TimedGraph g = capture_graph(launch, copies);
        auto replay_for = [&](double secs) {  // replays until `secs` have passed; the number of replays
          int n = 0;
          const auto t0 = std::chrono::steady_clock::now();
          do {
            for (int r = 0; r < 16; ++r, ++n) BENCH_CHECK(cudaGraphLaunch(g.exec, g_stream));
            BENCH_CHECK(cudaStreamSynchronize(g_stream));
          } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < secs);
          return n;
        };
        replay_for(0.5);  // to the steady clock and power
        power.begin();
        const auto t0 = std::chrono::steady_clock::now();
        const int n = replay_for(seconds);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto r = power.end();
        BENCH_CHECK(cudaGraphExecDestroy(g.exec));
        const double calls = double(n) * g.reps, us = wall * 1e6 / calls;
        const double mj = power.ok() ? r.joules * 1e3 / calls : std::nan("");
        std::printf("| %s | %lld | %s | %.1f | %.1f | %.0f | %.3f | %.3f | %u (%u) | 0x%llx |\n", model.c_str(),
                    (long long)m, name.c_str(), us, flops / us * 1e-6, r.watts(), mj, mj * 1e9 / flops,
                    r.sm_mhz_median, r.sm_mhz_min, r.reasons);
        std::fflush(stdout);
      }
    }
    BENCH_CHECK(cudaFree(a));
    BENCH_CHECK(cudaFree(c));
    rc::gemm_workspace_free(&ws);
    for (Linear& L : lin) {
      for (auto& w : L.w4) rc::repacked_weight_free(&w);
      for (auto& w : L.w8) rc::repacked_weight_free(&w);
      for (void* d : L.dense) BENCH_CHECK(cudaFree(d));
    }
  }
  return 0;
}

#ifdef RTNQ_SWAP_TRACE
// --trace: per call of one graph (the calls back to back, as time_graph runs them), from %globaltimer stamps of every
// block, in us: when its first block started, the first and last release from griddepcontrol.wait, the last block's
// hand-off and end, all from the end of the call before (its last block's end); then per block the medians of
// start -> wait released -> hand-off -> handed on -> stored -> end, the cluster barrier's completion after the
// cluster's last arrival, and the means of the stage timings (see gemm-swap-kernel.cuh).
int trace_calls(int64_t k, int64_t n, int64_t m, int nt, int cluster) {
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  const int copies = std::max(8, copies_for(double(n) * k / 2, prop.l2CacheSize));
  OneShape s = one_shape(k, n, m, nt, cluster, copies);
  const auto& w = s.w;
  constexpr int kWords = rc::kSwapTraceWords;
  const size_t cap = size_t(copies) * 4096;
  unsigned long long* buf;
  BENCH_CHECK(cudaMalloc(&buf, (1 + cap * kWords) * 8));
  for (int i = 0; i < copies; ++i) BENCH_CHECK(rc::gemm_quant(s.a, w[i], s.c, m, s.ws, g_stream, s.o));  // lazy init
  rc::set_swap_trace(buf);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  BENCH_CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < copies; ++i) BENCH_CHECK(rc::gemm_quant(s.a, w[i], s.c, m, s.ws, g_stream, s.o));
  BENCH_CHECK(cudaStreamEndCapture(g_stream, &graph));
  rc::set_swap_trace(nullptr);
  BENCH_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int rep = 0; rep < 3; ++rep) {  // the last replay is the one read
    BENCH_CHECK(cudaMemsetAsync(buf, 0, 8, g_stream));
    BENCH_CHECK(cudaGraphLaunch(exec, g_stream));
  }
  BENCH_CHECK(cudaStreamSynchronize(g_stream));
  unsigned long long count = 0;
  BENCH_CHECK(cudaMemcpy(&count, buf, 8, cudaMemcpyDeviceToHost));
  if (count > cap) {
    std::fprintf(stderr, "bench-gemm --trace: %llu records, room for %zu\n", count, cap);
    return 1;
  }
  std::vector<unsigned long long> rec(count * kWords);
  BENCH_CHECK(cudaMemcpy(rec.data(), buf + 1, rec.size() * 8, cudaMemcpyDeviceToHost));
  std::vector<std::vector<const unsigned long long*>> calls(copies);  // per call, its blocks' records
  for (size_t r = 0; r < count; ++r) {
    const unsigned long long* b = rec.data() + r * kWords;
    for (int i = 0; i < copies; ++i)
      if (b[0] == reinterpret_cast<unsigned long long>(w[i].words)) calls[i].push_back(b);
  }
  // Means for the stage columns: the timer steps 0.256 us, so only an average over blocks resolves them.
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? std::nan("") : sum / double(v.size());
  };
  // Stamp j of record b (0 start, 1 wait released, 2 hand-off, 3 handed on, 4 C stored, 5 end); 0 = not reached.
  auto st = [](const unsigned long long* b, int j) { return b[3 + j]; };
  std::printf("trace k=%lld n=%lld m=%lld nt=%d cluster=%d: %d calls, %llu block records (us; times from the end of "
              "the call before; per block: medians, stage columns: means)\n",
              (long long)k, (long long)n, (long long)m, nt, cluster, copies, count);
  std::printf("| call | blocks | SMs | csplit | first start | first wait release | last wait release | last hand-off | end "
              "| start-wait | wait-hand-off | hand-off-handed on | handed on-stored | stored-end | cluster barrier after "
              "its last arrival | wait-stage 0 ready | stage 0-1 | stage 1-2 | stage 2-3 | stage 1: ready-unit 0 dequantized | "
              "-all issued | -drained |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
              "---|\n");
  double prev_end = 0, first_end = 0, last_end = 0;
  for (int i = 0; i < copies; ++i) {
    const auto& bl = calls[i];
    if (bl.empty()) continue;
    unsigned long long lo[6], hi[6];
    std::fill(lo, lo + 6, ~0ull);
    std::fill(hi, hi + 6, 0ull);
    std::vector<double> d[5], barrier, sd[4], ud[3];
    std::vector<unsigned> sms;
    const int csplit = int(bl[0][2]);
    std::vector<unsigned long long> cluster_last;  // per cluster: its last block's hand-off
    for (const auto* b : bl) {
      for (int j = 0; j < 6; ++j)
        if (st(b, j) != 0) lo[j] = std::min(lo[j], st(b, j)), hi[j] = std::max(hi[j], st(b, j));
      for (int j = 0; j < 5; ++j)  // the next stamp this block reached
        for (int e = j + 1; e < 6; ++e)
          if (st(b, j) != 0 && st(b, e) != 0) {
            if (e == j + 1) d[j].push_back((double(st(b, e)) - double(st(b, j))) / 1e3);
            break;
          }
      sms.push_back(unsigned(b[1] >> 32));
      // Stage readiness: the first from the wait release, then from stage to stage.
      for (int j = 0; j < 4; ++j) {
        const unsigned long long from = j == 0 ? st(b, 1) : b[9 + j - 1], to = b[9 + j];
        if (from != 0 && to != 0) sd[j].push_back((double(to) - double(from)) / 1e3);
      }
      for (int j = 0; j < 3; ++j)  // inside stage 1, from its ready stamp
        if (b[10] != 0 && b[13 + j] != 0) ud[j].push_back((double(b[13 + j]) - double(b[10])) / 1e3);
      if (csplit > 1) {
        const size_t cl = size_t(unsigned(b[1]) / unsigned(csplit));
        if (cluster_last.size() <= cl) cluster_last.resize(cl + 1, 0);
        cluster_last[cl] = std::max(cluster_last[cl], st(b, 2));
      }
    }
    if (csplit > 1)
      for (const auto* b : bl)
        barrier.push_back((double(st(b, 3)) - double(cluster_last[unsigned(b[1]) / unsigned(csplit)])) / 1e3);
    std::sort(sms.begin(), sms.end());
    const size_t n_sm = size_t(std::unique(sms.begin(), sms.end()) - sms.begin());
    const double base = i == 0 ? double(lo[0]) : prev_end;
    auto rel = [&](unsigned long long v) { return (double(v) - base) / 1e3; };
    std::printf("| %d | %zu | %zu | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | "
                "%.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                i, bl.size(), n_sm, csplit, rel(lo[0]), rel(lo[1]), rel(hi[1]), rel(hi[2]), rel(hi[5]), median(d[0]),
                median(d[1]), median(d[2]), median(d[3]), median(d[4]), median(barrier), mean(sd[0]), mean(sd[1]),
                mean(sd[2]), mean(sd[3]), mean(ud[0]), mean(ud[1]), mean(ud[2]));
    // Calls 1-3, their blocks grouped by how many blocks of the same call shared their SM: the hardware places a
    // cluster inside one GPC and fills SMs up to the blocks-per-SM cap, so some SMs run 3 blocks of a call while
    // others run 1, and the call ends with its most loaded SM.
    if (i >= 1 && i <= 3) {
      std::map<unsigned, int> per_sm;
      for (const auto* b : bl) ++per_sm[unsigned(b[1] >> 32)];
      std::map<int, std::vector<double>> handoff, end;
      for (const auto* b : bl) {
        const int load = per_sm[unsigned(b[1] >> 32)];
        if (st(b, 2) != 0) handoff[load].push_back(rel(st(b, 2)));
        if (st(b, 5) != 0) end[load].push_back(rel(st(b, 5)));
      }
      std::printf("  call %d, blocks by their SM's load:", i);
      for (const auto& [load, h] : handoff)
        std::printf(" [%d a SM: %zu SMs, hand-off mean %.2f max %.2f, end mean %.2f]", load, h.size() / size_t(load),
                    mean(h), *std::max_element(h.begin(), h.end()), mean(end[load]));
      std::printf("\n");
    }
    prev_end = double(hi[5]);
    if (i == 0) first_end = prev_end;
    last_end = prev_end;
  }
  std::printf("mean call (end to end, calls 1..%d): %.2f us\n", copies - 1, (last_end - first_end) / 1e3 / (copies - 1));
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir = ".";
  bool quick = false, decode_only = false, swap_only = false, variants = true;
  std::vector<int64_t> ms_arg;
  std::string models_arg;
  long long cross_k = 0, cross_n = 0;
  int cross_bits = 4;
  double soak_s = 0;
  long long tail_k = 0, tail_n = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else if (std::strcmp(argv[i], "--decode-only") == 0) decode_only = true;
    else if (std::strcmp(argv[i], "--swap-only") == 0) swap_only = true;
    else if (std::strcmp(argv[i], "--no-variants") == 0) variants = false;
    else if (std::strcmp(argv[i], "--hot") == 0) g_hot = true;
    else if (std::strcmp(argv[i], "--ms") == 0 && i + 1 < argc) {
      for (const char* q = argv[++i]; *q;) {
        char* end = nullptr;
        ms_arg.push_back(std::strtoll(q, &end, 10));
        if (end == q || ms_arg.back() < 1) {
          std::fprintf(stderr, "bench-gemm: --ms wants positive integers separated by commas\n");
          return 2;
        }
        q = *end == ',' ? end + 1 : end;
      }
    } else if ((std::strcmp(argv[i], "--one") == 0 || std::strcmp(argv[i], "--one-wide") == 0 ||
                std::strcmp(argv[i], "--wide-sweep") == 0 || std::strcmp(argv[i], "--wide-ab") == 0 ||
                std::strcmp(argv[i], "--trace") == 0) &&
               i + 1 < argc) {
      const std::string flag = argv[i];
      long long k = 0, n = 0, m = 0, nt = 0, cl = 0;
      if (std::sscanf(argv[++i], "%lld,%lld,%lld,%lld,%lld", &k, &n, &m, &nt, &cl) < 3 || k < 1 || n < 1 || m < 1) {
        std::fprintf(stderr, "bench-gemm: %s wants K,N,M%s\n", flag.c_str(),
                     flag == "--one-wide"                             ? "[,SPLIT[,TOK]]"
                     : flag == "--wide-sweep" || flag == "--wide-ab" ? "[,TOK]"
                                                                     : "[,NT[,CLUSTER]]");
        return 2;
      }
      if (flag == "--one") return profile_one(k, n, m, int(nt), int(cl));
      // (--one-wide: the 4th number is the split, the 5th the token tile; --wide-sweep: the 4th the token tile)
      if (flag == "--one-wide") return profile_one(k, n, m, 0, int(nt), true, int(cl));
      if (flag == "--wide-sweep") return wide_sweep(k, n, m, int(nt));
      if (flag == "--wide-ab") return wide_ab(k, n, m, int(nt));
#ifdef RTNQ_SWAP_TRACE
      return trace_calls(k, n, m, int(nt), int(cl));
#else
      std::fprintf(stderr, "bench-gemm: --trace needs a build with -DRTNQ_SWAP_TRACE (scripts/gpu-check.sh --trace)\n");
      return 2;
#endif
    } else if (std::strcmp(argv[i], "--cross") == 0 && i + 1 < argc) {
      const int got = std::sscanf(argv[++i], "%lld,%lld,%d", &cross_k, &cross_n, &cross_bits);
      if (got < 2 || cross_k < 1 || cross_n < 1 || (cross_bits != 4 && cross_bits != 8)) {
        std::fprintf(stderr, "bench-gemm: --cross wants K,N[,BITS] (BITS 4 or 8)\n");
        return 2;
      }
    } else if (std::strcmp(argv[i], "--tail-ab") == 0 && i + 1 < argc) {
      if (std::sscanf(argv[++i], "%lld,%lld", &tail_k, &tail_n) != 2 || tail_k < 1 || tail_n < 1) {
        std::fprintf(stderr, "bench-gemm: --tail-ab wants K,N\n");
        return 2;
      }
    } else if (std::strcmp(argv[i], "--soak") == 0 && i + 1 < argc) {
      soak_s = std::atof(argv[++i]);
      if (!(soak_s > 0)) {
        std::fprintf(stderr, "bench-gemm: --soak wants seconds a path\n");
        return 2;
      }
    } else if (std::strcmp(argv[i], "--shapes") == 0 && i + 1 < argc) models_arg = "," + std::string(argv[++i]) + ",";
    else out_dir = argv[i];
  }
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  BENCH_CHECK(cudaStreamCreate(&g_stream));
  cublasHandle_t cublas;
  if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) return 1;
  cublasSetStream(cublas, g_stream);
  if (tail_k > 0) return tail_ab(tail_k, tail_n, ms_arg);
  if (cross_k > 0) return cross_sweep(cross_k, cross_n, cross_bits, ms_arg, cublas);
  const double l2 = prop.l2CacheSize;
  const double copy_gbs = copy_bandwidth_gbs();
  std::printf("# bench-gemm on %s (%d SMs, L2 %.0f MB), copy bandwidth %.0f GB/s (read+write)%s\n", prop.name,
              prop.multiProcessorCount, l2 / 1e6, copy_gbs, g_hot ? "; --hot: weights not rotated" : "");

  std::vector<Shape> shapes = {
      {"8B", "qkv", 4096, 6144},      {"8B", "o", 4096, 4096},      {"8B", "gate_up", 4096, 28672},
      {"8B", "down", 14336, 4096},    {"70B", "qkv", 8192, 10240},  {"70B", "o", 8192, 8192},
      {"70B", "gate_up", 8192, 57344}, {"70B", "down", 28672, 8192}, {"405B", "qkv", 16384, 18432},
      {"405B", "o", 16384, 16384},     {"405B", "gate_up", 16384, 106496}, {"405B", "down", 53248, 16384},
      {"SmolLM2", "qkv", 576, 960},
      {"SmolLM2", "o", 576, 576},      {"SmolLM2", "gate_up", 576, 3072}, {"SmolLM2", "down", 1536, 576}};
  std::vector<int64_t> ms = {1, 4, 16, 32, 64, 128, 256, 1024, 4096};
  if (quick) ms = {1, 16, 64, 256, 1024};
  if (!ms_arg.empty()) ms = ms_arg;
  if (decode_only || swap_only) ms.clear();
  if (!models_arg.empty())
    shapes.erase(std::remove_if(shapes.begin(), shapes.end(),
                                [&](const Shape& s) { return models_arg.find("," + std::string(s.model) + ",") == std::string::npos; }),
                 shapes.end());
  if (soak_s > 0) {  // (8B alone unless --shapes names others)
    if (models_arg.empty())
      shapes.erase(std::remove_if(shapes.begin(), shapes.end(),
                                  [](const Shape& s) { return s.model != std::string("8B"); }),
                   shapes.end());
    return soak_layers(shapes, ms_arg, soak_s, cublas);
  }
  const bool swap_variants = variants && !decode_only;
  // (--ms also sets the swap variants' m in --swap-only runs, which may go past 256.)
  const int64_t max_m = std::max<int64_t>({swap_variants ? 256 : 16, ms.empty() ? 16 : *std::max_element(ms.begin(), ms.end()),
                                           ms_arg.empty() ? 16 : *std::max_element(ms_arg.begin(), ms_arg.end())});

  // Decode-kernel variants (m <= 16), same run: minimum batches per warp 1 (default), 2, 4, 8, 16; without
  // PDL; the tiled kernel; INT8. Printed as their own table (with the 8B layer summed); the main table uses the
  // defaults.
  const std::vector<std::string> variant_names = {"decode (PDL)", "no PDL", "min 2 batches/warp", "min 4", "min 8",
                                                  "min 16", "tiled kernel", "INT8 decode", "INT8 min 4",
                                                  "INT8 tiled", "INT4 roofline"};
  struct VariantRow {
    std::string model, name;
    int64_t m;
    std::vector<double> us;
  };
  std::vector<VariantRow> variant_rows;
  // Swapped-operand kernel variants (m = 1..256): k split forced (stream-K, cluster sizes), token tile forced,
  // mma.sync, at least 4 k batches per block, no PDL, clusters packed (not spread), INT8, weights scaled before
  // the MMA up to 16 tokens (no deferred scales, which only 8-token tiles use), next to the tiled kernel and cuBLAS
  // BF16 (same run); the strip kernel at m <= 16 (its own split, forced one or two blocks a strip, unpadded
  // blocks, INT8); and, after the roofline, the wide kernel (its own split, INT8, multicast pairs, one block a tile,
  // stream-K).
  const std::vector<std::string> swap_names = {"swap (auto)", "stream-K", "cluster 2", "cluster 4", "cluster 8", "cluster 16",
                                               "mma.sync", "tokens 8", "tokens 16", "tokens 32", "tokens 64",
                                               "tokens 128", "min 4 batches/block", "no PDL", "clusters packed",
                                               "tiled kernel", "INT8 swap",
                                               "INT8 stream-K", "scaled weights", "INT8 scaled weights", "strip",
                                               "strip 1 a strip", "strip 2 a strip", "strip unpadded", "INT8 strip",
                                               "cuBLAS BF16", "INT4 roofline", "wide", "INT8 wide", "wide multicast",
                                               "wide split 1", "wide stream-K"};
  std::vector<VariantRow> swap_rows;
  std::vector<int64_t> swap_ms = {1, 4, 16, 32, 64, 128, 256};
  if (swap_only && !ms_arg.empty()) swap_ms = ms_arg;

  rc::GemmWorkspace ws;
  // (Sized for the largest m timed: stream-K's partial sums need one fp32 per output.)
  int64_t max_n = 0;
  for (const Shape& s : shapes) max_n = std::max(max_n, s.n);
  BENCH_CHECK(rc::gemm_workspace_alloc(std::max<int64_t>(max_m, 256), std::max<int64_t>(max_n, 1), &ws, g_stream));
  std::vector<Row> rows;
  for (const Shape& s : shapes) {
    const double q4_bytes = double(s.n) * s.k / 2 + double(s.n) * (s.k / 128) * 2;
    const double q8_bytes = double(s.n) * s.k + double(s.n) * (s.k / 128) * 2;
    const double dense_bytes = double(s.n) * s.k * 2;
    const int c4 = copies_for(q4_bytes, l2), c8 = copies_for(q8_bytes, l2), cd = copies_for(dense_bytes, l2);
    auto w4 = make_weights(s.n, s.k, 4, c4, 11);
    auto w8 = make_weights(s.n, s.k, 8, c8, 12);
    const std::vector<void*> dense = make_dense_copies(s.n, s.k, cd);
    void *a, *c, *scratch;
    BENCH_CHECK(cudaMalloc(&a, size_t(max_m * s.k * 2)));
    BENCH_CHECK(cudaMalloc(&c, size_t(max_m * s.n * 2)));
    BENCH_CHECK(cudaMalloc(&scratch, size_t(dense_bytes)));
    fill_random(a, size_t(max_m * s.k), DType::kBF16, 14);
    // (The variants tables: 8B and 70B only. SmolLM2 is too small to tell kernels apart; 405B would double the run.)
    const bool variant_shape = s.model == std::string("8B") || s.model == std::string("70B");
    if (variants && !swap_only && variant_shape)
      for (int64_t m : {1, 4, 16}) {
        auto t = [&](std::vector<rc::RepackedWeight>& w, int copies, rc::GemmOptions o) {
          return time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w[i], c, m, ws, g_stream, o)); }, copies);
        };
        auto with_min = [](int b) {
          rc::GemmOptions o;
          o.decode_min_batches = b;
          return o;
        };
        rc::GemmOptions nopdl, tiled;
        nopdl.pdl = false;
        tiled.kernel = rc::GemmOptions::Kernel::kTiled;
        VariantRow v{s.model, s.name, m, {}};
        for (int b : {1}) v.us.push_back(t(w4, c4, with_min(b)));
        v.us.push_back(t(w4, c4, nopdl));
        for (int b : {2, 4, 8, 16}) v.us.push_back(t(w4, c4, with_min(b)));
        v.us.push_back(t(w4, c4, tiled));
        v.us.push_back(t(w8, c8, with_min(1)));
        v.us.push_back(t(w8, c8, with_min(4)));
        v.us.push_back(t(w8, c8, tiled));
        v.us.push_back((q4_bytes + double(m) * (s.k + s.n) * 2) / (copy_gbs * 1e3));
        variant_rows.push_back(v);
      }
    if (swap_variants && variant_shape)
      for (int64_t m : swap_ms) {
        auto t = [&](std::vector<rc::RepackedWeight>& w, int copies, rc::GemmOptions o) {
          o.kernel = rc::GemmOptions::Kernel::kSwap;
          return time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w[i], c, m, ws, g_stream, o)); }, copies);
        };
        VariantRow v{s.model, s.name, m, {}};
        rc::GemmOptions mma, streamk;
        mma.swap_wgmma = false;
        streamk.swap_cluster = 1;
        v.us.push_back(t(w4, c4, {}));
        v.us.push_back(t(w4, c4, streamk));
        for (int cs : {2, 4, 8, 16}) {  // forced cluster split-k: token tiles up to 64 only
          rc::GemmOptions o;
          o.swap_cluster = cs;
          v.us.push_back(m <= 64 ? t(w4, c4, o) : std::nan(""));
        }
        v.us.push_back(t(w4, c4, mma));
        for (int nt : {8, 16, 32, 64, 128}) {
          rc::GemmOptions o;
          o.swap_tokens = nt;
          v.us.push_back(t(w4, c4, o));
        }
        rc::GemmOptions min4;
        min4.swap_min_iters = 4;
        v.us.push_back(t(w4, c4, min4));
        rc::GemmOptions nopdl, tiled;
        nopdl.pdl = false;
        v.us.push_back(t(w4, c4, nopdl));
        rc::GemmOptions packed;
        packed.swap_spread = false;
        v.us.push_back(t(w4, c4, packed));
        tiled.m_tile_rows = m <= 16 ? 16 : 64;
        v.us.push_back(time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w4[i], c, m, ws, g_stream, tiled)); }, c4));
        v.us.push_back(t(w8, c8, {}));
        v.us.push_back(t(w8, c8, streamk));
        rc::GemmOptions scaled;
        scaled.swap_defer_scales = false;
        v.us.push_back(m <= 16 ? t(w4, c4, scaled) : std::nan(""));
        v.us.push_back(m <= 16 ? t(w8, c8, scaled) : std::nan(""));
        auto strip = [&](std::vector<rc::RepackedWeight>& w, int copies, int split, int per_sm) {
          if (m > 16) return std::nan("");
          rc::GemmOptions o;
          o.kernel = rc::GemmOptions::Kernel::kStrip;
          o.strip_split = split;
          o.strip_per_sm = per_sm;
          return time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w[i], c, m, ws, g_stream, o)); }, copies);
        };
        v.us.push_back(strip(w4, c4, 0, 1));
        v.us.push_back(strip(w4, c4, 1, 1));
        v.us.push_back(strip(w4, c4, 2, 1));
        v.us.push_back(strip(w4, c4, 0, 0));
        v.us.push_back(strip(w8, c8, 0, 1));
        v.us.push_back(time_graph([&](int i) { BENCH_CHECK(rc::cublas_gemm_nt(a, dense[i], c, m, s.n, s.k, DType::kBF16, cublas)); }, cd));
        v.us.push_back((q4_bytes + double(m) * (s.k + s.n) * 2) / (copy_gbs * 1e3));
        rc::GemmOptions wide;
        wide.kernel = rc::GemmOptions::Kernel::kWide;
        auto tw = [&](std::vector<rc::RepackedWeight>& w, int copies) {
          return time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w[i], c, m, ws, g_stream, wide)); }, copies);
        };
        v.us.push_back(tw(w4, c4));
        v.us.push_back(tw(w8, c8));
        wide.wide_multicast = true;
        v.us.push_back(tw(w4, c4));
        wide.wide_multicast = false;
        wide.wide_split = 1;
        v.us.push_back(tw(w4, c4));
        wide.wide_split = rc::kWideStreamK;
        v.us.push_back(tw(w4, c4));
        swap_rows.push_back(v);
      }
    for (int64_t m : ms) {
      Row r{s.model, s.name, s.k, s.n, m};
      r.flops = 2.0 * m * s.n * s.k;
      r.bytes_q4 = q4_bytes + double(m) * (s.k + s.n) * 2;
      r.bytes_q8 = q8_bytes + double(m) * (s.k + s.n) * 2;
      // From 64 tokens both paths draw the card to its power cap, and a timing then depends on what ran just before
      // it (time_graphs): there the columns the ratios compare (INT4, INT8, cuBLAS BF16, the dual path) are timed
      // interleaved, after the others; below, each on its own in this order.
      const bool interleaved = m >= 64;
      const auto q4_call = [&](int i) { BENCH_CHECK(rc::gemm_quant(a, w4[i], c, m, ws, g_stream)); };
      if (!interleaved) r.us_q4 = time_graph(q4_call, c4);
      if (m <= 16) {
        rc::GemmOptions dec;
        dec.kernel = rc::GemmOptions::Kernel::kDecode;
        r.us_q4_decode = time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w4[i], c, m, ws, g_stream, dec)); }, c4);
      }
      if (m >= 32 && m <= 256) {
        rc::GemmOptions o16, o64;
        o16.m_tile_rows = 16;
        o64.m_tile_rows = 64;
        r.us_q4_t16 = time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w4[i], c, m, ws, g_stream, o16)); }, c4);
        r.us_q4_t64 = time_graph([&](int i) { BENCH_CHECK(rc::gemm_quant(a, w4[i], c, m, ws, g_stream, o64)); }, c4);
      }
      const auto q8_call = [&](int i) { BENCH_CHECK(rc::gemm_quant(a, w8[i], c, m, ws, g_stream)); };
      if (!interleaved) r.us_q8 = time_graph(q8_call, c8);
      r.us_dense4 = time_graph([&](int i) { BENCH_CHECK(rc::gemm_dense(a, w4[i], c, m, scratch, cublas, g_stream)); }, c4);
      // cuBLAS FP16 times the same bytes reinterpreted as fp16 (finite: |x| <= 1 bf16 patterns read as small fp16).
      auto bf16_call = [&](int i) { BENCH_CHECK(rc::cublas_gemm_nt(a, dense[i], c, m, s.n, s.k, DType::kBF16, cublas)); };
      if (!interleaved) r.us_bf16 = time_graph(bf16_call, cd);
      r.us_fp16 = time_graph([&](int i) { BENCH_CHECK(rc::cublas_gemm_nt(a, dense[i], c, m, s.n, s.k, DType::kF16, cublas)); }, cd);
      // The dual path as a serving engine runs it: packed weight + its dense copy (dense[i] stands in for the
      // copy: same shape and dtype), rotated together.
      const int ca = std::max(c4, cd);
      auto auto_call = [&](int i) {
        BENCH_CHECK(rc::gemm_auto_cached(a, w4[i % c4], dense[i % cd], c, m, ws, cublas, g_stream));
      };
      // The dual path without a kept copy: the weight dequantized into scratch on every call above its crossover.
      auto auto_dq_call = [&](int i) {
        BENCH_CHECK(rc::gemm_auto(a, w4[i], c, m, ws, scratch, cublas, g_stream));
      };
      if (!interleaved) {
        r.us_auto = time_graph(auto_call, ca);
        r.us_auto_dq = time_graph(auto_dq_call, c4);
      } else {
        const std::vector<double> us =
            time_graphs({q4_call, q8_call, bf16_call, auto_call, auto_dq_call}, {c4, c8, cd, ca, c4});
        r.us_q4 = us[0];
        r.us_q8 = us[1];
        r.us_bf16 = us[2];
        r.us_auto = us[3];
        r.us_auto_dq = us[4];
      }
      rows.push_back(r);
      std::fprintf(stderr,
                   "%s %s m=%lld: q4 %.1f us (decode %.1f, 16-row %.1f, 64-row %.1f), q8 %.1f us, dense %.1f us, bf16 %.1f us, "
                   "fp16 %.1f us, auto %.1f us\n",
                   s.model, s.name, (long long)m, r.us_q4, r.us_q4_decode, r.us_q4_t16, r.us_q4_t64, r.us_q8, r.us_dense4, r.us_bf16,
                   r.us_fp16, r.us_auto);
    }
    for (auto& w : w4) rc::repacked_weight_free(&w);
    for (auto& w : w8) rc::repacked_weight_free(&w);
    for (auto* d : dense) BENCH_CHECK(cudaFree(d));
    BENCH_CHECK(cudaFree(a));
    BENCH_CHECK(cudaFree(c));
    BENCH_CHECK(cudaFree(scratch));
  }
  // The issue's comparison row: the four linears of one 8B layer, summed; the same for every other model timed.
  const std::vector<std::string> models = models_of(shapes);
  for (const std::string& model : models) {
    for (int64_t m : ms) {
      Row sum{model, "4 linears", 0, 0, m};
      for (const Row& r : rows)
        if (r.model == model && r.m == m) {
          sum.us_q4 += r.us_q4, sum.us_q4_decode += r.us_q4_decode, sum.us_q4_t16 += r.us_q4_t16, sum.us_q4_t64 += r.us_q4_t64, sum.us_q8 += r.us_q8, sum.us_dense4 += r.us_dense4;
          sum.us_bf16 += r.us_bf16, sum.us_fp16 += r.us_fp16, sum.us_auto += r.us_auto;
          sum.us_auto_dq += r.us_auto_dq;
          sum.bytes_q4 += r.bytes_q4, sum.bytes_q8 += r.bytes_q8, sum.flops += r.flops;
        }
      rows.push_back(sum);
    }
  }

  std::string md, json = "{\"device\": \"" + std::string(prop.name) + "\", \"copy_gbs\": " + std::to_string(copy_gbs) + ", \"rows\": [\n";
  char line[1024];
  md += "| model | linear | k x n | m | INT4 us | INT4 GB/s | INT4 % roofline | INT4 TFLOP/s | INT4 vs cuBLAS BF16 | "
        "INT4 vs cuBLAS FP16 | INT8 us | INT8 % roofline | INT8 vs BF16 | dequant+cuBLAS us | cuBLAS BF16 us | "
        "cuBLAS FP16 us | dual path (auto, cached copy) us | dual path vs BF16 | dual path, dequantizing (gemm_auto) "
        "us | INT4 other kernels us |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  bool first = true;
  for (const Row& r : rows) {
    const double roof4 = r.bytes_q4 / (copy_gbs * 1e3), roof8 = r.bytes_q8 / (copy_gbs * 1e3);
    std::snprintf(line, sizeof line,
                  "| %s | %s | %lldx%lld | %lld | %.1f | %.0f | %.0f%% | %.1f | %.2fx | %.2fx | %.1f | %.0f%% | %.2fx | %.1f | "
                  "%.1f | %.1f | %.1f | %.2fx | %.1f | %s |\n",
                  r.model.c_str(), r.name.c_str(), (long long)r.k, (long long)r.n, (long long)r.m, r.us_q4,
                  r.bytes_q4 / (r.us_q4 * 1e3), 100 * roof4 / r.us_q4, r.flops / (r.us_q4 * 1e6), r.us_bf16 / r.us_q4,
                  r.us_fp16 / r.us_q4, r.us_q8, 100 * roof8 / r.us_q8, r.us_bf16 / r.us_q8, r.us_dense4, r.us_bf16,
                  r.us_fp16, r.us_auto, r.us_bf16 / r.us_auto, r.us_auto_dq, other_kernels(r).c_str());
    md += line;
    std::snprintf(line, sizeof line,
                  "%s  {\"model\": \"%s\", \"linear\": \"%s\", \"k\": %lld, \"n\": %lld, \"m\": %lld, \"int4_us\": %.3f, "
                  "\"int4_decode_us\": %.3f, \"int4_tile16_us\": %.3f, \"int4_tile64_us\": %.3f, \"int8_us\": %.3f, \"dense_int4_us\": %.3f, \"cublas_bf16_us\": %.3f, \"cublas_fp16_us\": %.3f, \"auto_cached_us\": %.3f, \"auto_dequant_us\": %.3f, "
                  "\"int4_roofline_us\": %.3f, \"int8_roofline_us\": %.3f, \"flops\": %.0f}",
                  first ? "" : ",\n", r.model.c_str(), r.name.c_str(), (long long)r.k, (long long)r.n, (long long)r.m,
                  r.us_q4, r.us_q4_decode, r.us_q4_t16, r.us_q4_t64, r.us_q8, r.us_dense4, r.us_bf16, r.us_fp16, r.us_auto, r.us_auto_dq, roof4, roof8,
                  r.flops);
    json += line;
    first = false;
  }
  json += "\n]}\n";
  // Crossover: the smallest m from which cuBLAS on the kept dense copy beats the fused INT4 kernel, per shape.
  md += "\nINT4 crossover (smallest m where cuBLAS on a dense copy beats the fused kernel):";
  for (const Shape& s : shapes) {
    int64_t cross = -1;
    for (const Row& r : rows)
      if (r.name == s.name && r.model == s.model && r.us_bf16 < r.us_q4) {
        cross = r.m;
        break;
      }
    std::snprintf(line, sizeof line, " %s/%s=%lld;", s.model, s.name, (long long)cross);
    md += line;
  }
  std::snprintf(line, sizeof line, "\nDual path's default crossover on this card (peak HBM %.0f GB/s; fused up to):",
                rc::card_peak_hbm_gbs());
  md += line;
  for (const Shape& s : shapes) {
    std::snprintf(line, sizeof line, " %s/%s=%lld;", s.model, s.name,
                  (long long)rc::default_dense_crossover_m(s.n, s.k, 4));
    md += line;
  }
  md += "\nDequantizing dual path's (gemm_auto) default crossover on this card (fused up to):";
  for (const Shape& s : shapes) {
    std::snprintf(line, sizeof line, " %s/%s=%lld;", s.model, s.name,
                  (long long)rc::default_dequant_crossover_m(s.n, s.k, 4));
    md += line;
  }
  md += "\n";
  // A variants table with the 8B layer summed per m.
  auto variants_table = [&](const char* title, const std::vector<std::string>& names, std::vector<VariantRow> vrows,
                            const std::vector<int64_t>& vms) {
    if (vrows.empty()) return;
    const bool has_8b = std::any_of(vrows.begin(), vrows.end(), [](const VariantRow& v) { return v.model == "8B"; });
    for (int64_t m : has_8b ? vms : std::vector<int64_t>{}) {
      VariantRow sum{"8B", "4 linears", m, std::vector<double>(names.size(), 0.0)};
      for (const VariantRow& v : vrows)
        if (v.model == "8B" && v.m == m)
          for (size_t i = 0; i < v.us.size(); ++i) sum.us[i] += v.us[i];
      vrows.push_back(sum);
    }
    md += std::string("\n") + title + " (us; INT4 unless named):\n\n| model | linear | m |";
    for (const auto& n : names) md += " " + n + " |";
    md += "\n|---|---|---|";
    for (size_t i = 0; i < names.size(); ++i) md += "---|";
    md += "\n";
    for (const VariantRow& v : vrows) {
      md += "| " + v.model + " | " + v.name + " | " + std::to_string(v.m) + " |";
      for (double us : v.us) {
        if (std::isnan(us)) {
          md += " - |";  // not applicable (e.g. a forced cluster size at a 128-token tile)
          continue;
        }
        std::snprintf(line, sizeof line, " %.1f |", us);
        md += line;
      }
      md += "\n";
    }
  };
  variants_table("Decode kernel variants", variant_names, variant_rows, {1, 4, 16});
  variants_table("Swapped-operand kernel variants", swap_names, swap_rows, swap_ms);
  std::printf("%s", md.c_str());
  if (FILE* f = std::fopen((out_dir + "/gemm.md").c_str(), "w")) {
    std::fputs(md.c_str(), f);
    std::fclose(f);
  }
  if (FILE* f = std::fopen((out_dir + "/gemm.json").c_str(), "w")) {
    std::fputs(json.c_str(), f);
    std::fclose(f);
  }
  rc::gemm_workspace_free(&ws);
  cublasDestroy(cublas);
  return 0;
}
