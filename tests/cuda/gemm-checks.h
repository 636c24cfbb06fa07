// GPU checks of the mixed-precision GEMM, written once and driven by two harnesses: GoogleTest (gemm-test.cu, in
// CI where it skips without a GPU) and a dependency-free main (gpu-check-main.cu, built by scripts/gpu-check.sh on
// the GPU machine, which has no GoogleTest).
//
// Every check draws fresh random inputs (std::random_device seed, reported on failure), poisons outputs with NaN
// before the run and checks every element. Tolerances (relative Frobenius error against an fp64-accumulated
// product of the exactly dequantized weights): FP16 2e-3, BF16 1e-2 - the kernel rounds q*s to the activation
// dtype (FP16: 2^-11 relative, BF16: 2^-8) before the tensor cores see it, and rounds C once at the end.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/gemm.h"
#include "cuda/repack-layout.h"
#include "quant/pack-layout.h"

namespace rtnq::cuda::checks {

struct CheckResult {
  bool ok = true;
  std::string detail;
};

inline std::string dtype_label(DType t) { return t == DType::kF16 ? "f16" : "bf16"; }

inline float half_bits_to_float(uint16_t b, DType t) {
  if (t == DType::kBF16) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  __half_raw r;
  r.x = b;
  return __half2float(__half(r));
}
inline uint16_t float_to_half_bits(float f, DType t) {
  if (t == DType::kBF16) {
    __nv_bfloat16 h = __float2bfloat16_rn(f);
    uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
  }
  __half h = __float2half_rn(f);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}

// A random quantized weight in checkpoint layout, as the quantizer would write it.
struct Checkpoint {
  int64_t n = 0, k = 0, groups = 0, group = 0;
  int bits = 4;
  std::vector<int32_t> packed;   // [n, packed_row_words(k, bits)]
  std::vector<uint16_t> scales;  // [n, groups] raw bits in the activation dtype
  std::vector<float> dequant;    // [n, k] = q * s, exact in fp32
};

inline Checkpoint random_checkpoint(int64_t n, int64_t k, int bits, int64_t group_size, DType act, std::mt19937_64& rng) {
  Checkpoint c;
  c.n = n;
  c.k = k;
  c.bits = bits;
  c.group = (group_size <= 0 || group_size >= k) ? k : group_size;
  c.groups = (k + c.group - 1) / c.group;
  const int64_t row_words = packed_row_words(k, bits);
  c.packed.assign(size_t(n * row_words), 0);
  c.scales.resize(size_t(n * c.groups));
  c.dequant.resize(size_t(n * k));
  std::uniform_real_distribution<float> sd(0.25f, 2.f);
  // Scales around 1/qmax keep |w| ~ 1 so products neither vanish nor overflow fp16.
  const float scale_unit = 1.f / float(q_max(bits));
  for (auto& s : c.scales) s = float_to_half_bits(sd(rng) * scale_unit, act);
  // The weights in chunks of rows, each chunk drawn from its own engine (seeded by the case's seed and the chunk's
  // index, so a reported seed reproduces the case on any host), spread over the host's cores: a 405B gate_up is
  // 1.74G draws.
  constexpr int64_t kChunkRows = 256;
  const uint64_t base = rng();
  const int64_t chunks = (n + kChunkRows - 1) / kChunkRows;
  const int64_t cores = std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
  const int threads = int(std::min(chunks, cores));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::uniform_int_distribution<int> qd(q_min(bits), q_max(bits));
      for (int64_t ch = t; ch < chunks; ch += threads) {
        std::seed_seq seq{uint32_t(base), uint32_t(base >> 32), uint32_t(ch), uint32_t(ch >> 32)};
        std::mt19937_64 eng(seq);
        for (int64_t i = ch * kChunkRows; i < std::min(n, (ch + 1) * kChunkRows); ++i) {
          for (int64_t j = 0; j < k; ++j) {
            const int q = qd(eng);
            c.packed[size_t(i * row_words + pack_word_index(j, bits))] |=
                int32_t(pack_stored_value(q, bits) << pack_bit_offset(j, bits));
            c.dequant[size_t(i * k + j)] =
                float(q) * half_bits_to_float(c.scales[size_t(i * c.groups + j / c.group)], act);
          }
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return c;
}

// C_ref[m, n] = sum_k A[m, k] W[n, k], fp64 accumulation, rows spread over the host's cores.
inline std::vector<double> reference_product(const std::vector<float>& a, const std::vector<float>& w, int64_t m,
                                             int64_t n, int64_t k) {
  std::vector<double> c(size_t(m * n));
  const int threads = std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int64_t idx = t; idx < m * n; idx += threads) {
        const int64_t i = idx / n, j = idx % n;
        const float* ar = a.data() + i * k;
        const float* wr = w.data() + j * k;
        double acc = 0;
        for (int64_t x = 0; x < k; ++x) acc += double(ar[x]) * double(wr[x]);
        c[size_t(idx)] = acc;
      }
    });
  }
  for (auto& th : pool) th.join();
  return c;
}

// Owns the stream, workspace and cuBLAS handle for a run of checks.
struct Context {
  cudaStream_t stream = nullptr;
  GemmWorkspace ws;
  cublasHandle_t cublas = nullptr;
  std::random_device rd;

  bool init(std::string* err) {
    if (cudaStreamCreate(&stream) != cudaSuccess) return *err = "cudaStreamCreate failed", false;
    if (gemm_workspace_alloc(4096, 8192, &ws, stream) != cudaSuccess) return *err = gemm_error_message(), false;
    if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) return *err = "cublasCreate failed", false;
    cublasSetStream(cublas, stream);
    return true;
  }
  ~Context() {
    if (cublas) cublasDestroy(cublas);
    gemm_workspace_free(&ws);
    if (stream) cudaStreamDestroy(stream);
  }
};

inline bool gpu_available() {
  int count = 0;
  const bool ok = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
  (void)cudaGetLastError();
  return ok;
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceBuffer(size_t n) : count(n) {
    if (cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) ptr = nullptr;
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

#define RTNQ_CHECK_CUDA_OR_FAIL(expr, what)                                                                  \
  do {                                                                                                      \
    const cudaError_t _e = (expr);                                                                          \
    if (_e != cudaSuccess)                                                                                  \
      return CheckResult{false, std::string(what) + ": " + cudaGetErrorString(_e) + " " + gemm_error_message()}; \
  } while (0)

// GPU repack must equal the CPU reference bit for bit (padding included).
inline CheckResult check_repack(Context& ctx, int64_t n, int64_t k, int bits, int64_t group, DType act) {
  const uint64_t seed = (uint64_t(ctx.rd()) << 32) | ctx.rd();
  std::mt19937_64 rng(seed);
  const std::string label = "repack n=" + std::to_string(n) + " k=" + std::to_string(k) + " int" +
                            std::to_string(bits) + " g=" + std::to_string(group) + " " + dtype_label(act) +
                            " seed=" + std::to_string(seed);
  const Checkpoint c = random_checkpoint(n, k, bits, group, act, rng);
  RepackedWeight w;
  RTNQ_CHECK_CUDA_OR_FAIL(repacked_weight_alloc(n, k, bits, group, act, &w), label);
  const RepackShape s = w.shape;
  std::vector<uint32_t> ref_words(size_t(repacked_weight_words(s)));
  std::vector<uint16_t> ref_scales(size_t(repacked_scale_count(s)));
  repack_reference(s, c.packed.data(), c.scales.data(), ref_words.data(), ref_scales.data());
  DeviceBuffer<int32_t> d_packed(c.packed.size());
  DeviceBuffer<uint16_t> d_scales(c.scales.size());
  CheckResult r;
  auto run = [&]() -> CheckResult {
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(d_packed.ptr, c.packed.data(), c.packed.size() * 4, cudaMemcpyHostToDevice), label);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(d_scales.ptr, c.scales.data(), c.scales.size() * 2, cudaMemcpyHostToDevice), label);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemset(w.words, 0xA5, ref_words.size() * 4), label);  // poison
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemset(w.scales, 0xA5, ref_scales.size() * 2), label);
    RTNQ_CHECK_CUDA_OR_FAIL(repack_weight(d_packed.ptr, d_scales.ptr, &w, ctx.stream), label);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaStreamSynchronize(ctx.stream), label);
    std::vector<uint32_t> got_words(ref_words.size());
    std::vector<uint16_t> got_scales(ref_scales.size());
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(got_words.data(), w.words, got_words.size() * 4, cudaMemcpyDeviceToHost), label);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(got_scales.data(), w.scales, got_scales.size() * 2, cudaMemcpyDeviceToHost), label);
    for (size_t i = 0; i < got_words.size(); ++i)
      if (got_words[i] != ref_words[i])
        return {false, label + ": word " + std::to_string(i) + " differs"};
    for (size_t i = 0; i < got_scales.size(); ++i)
      if (got_scales[i] != ref_scales[i])
        return {false, label + ": scale " + std::to_string(i) + " differs"};
    // The layout loses nothing: every logical q reads back.
    const int64_t row_words = packed_row_words(k, bits);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const int32_t q = pack_signed_value(uint32_t(c.packed[size_t(i * row_words + pack_word_index(j, bits))]) >>
                                                pack_bit_offset(j, bits), bits);
        if (repacked_q(s, got_words.data(), i, j) != q)
          return {false, label + ": q(" + std::to_string(i) + ", " + std::to_string(j) + ") lost"};
      }
    return {true, label};
  };
  r = run();
  repacked_weight_free(&w);
  return r;
}

enum class Path {
  kQuant, kQuantNoSplit, kQuantTile16, kQuantTile64, kQuantTiled, kDecode, kDecodeLong, kSwap8, kSwap16, kSwap32,
  kSwap64, kSwap128, kSwapMma, kSwapStreamK, kSwapCluster2, kSwapCluster5, kSwapCluster8, kSwapCluster16,
  kSwap16Cluster4, kSwap8Scaled, kSwapPacked, kStrip, kStripOne, kStripPacked, kWide, kWideOne, kWideSplit3, kWideMcast,
  kWide64, kWide128, kWideStreamK, kWide64StreamK, kDense, kDequant, kAutoCached, kAuto, kQuantTail
};
inline const char* path_label(Path p) {
  switch (p) {
    case Path::kQuant: return "quant";
    case Path::kQuantNoSplit: return "quant-nosplit";
    case Path::kQuantTile16: return "quant-tile16";
    case Path::kQuantTile64: return "quant-tile64";
    case Path::kQuantTiled: return "quant-tiled";
    case Path::kDecode: return "decode";
    case Path::kDecodeLong: return "decode-long";
    case Path::kSwap8: return "swap8";
    case Path::kSwap16: return "swap16";
    case Path::kSwap32: return "swap32";
    case Path::kSwap64: return "swap64";
    case Path::kSwap128: return "swap128";
    case Path::kSwapMma: return "swap-mma";
    case Path::kSwapStreamK: return "swap-streamk";
    case Path::kSwapCluster2: return "swap-cluster2";
    case Path::kSwapCluster5: return "swap-cluster5";
    case Path::kSwapCluster8: return "swap-cluster8";
    case Path::kSwapCluster16: return "swap-cluster16";
    case Path::kSwap16Cluster4: return "swap16-cluster4";
    case Path::kSwap8Scaled: return "swap8-scaled";
    case Path::kSwapPacked: return "swap-packed";
    case Path::kStrip: return "strip";
    case Path::kStripOne: return "strip-one";
    case Path::kStripPacked: return "strip-packed";
    case Path::kWide: return "wide";
    case Path::kWideOne: return "wide-one";
    case Path::kWideSplit3: return "wide-split3";
    case Path::kWideMcast: return "wide-mcast";
    case Path::kWide64: return "wide64";
    case Path::kWide128: return "wide128";
    case Path::kWideStreamK: return "wide-streamk";
    case Path::kWide64StreamK: return "wide64-streamk";
    case Path::kDense: return "dense";
    case Path::kDequant: return "dequant";
    case Path::kAutoCached: return "auto-cached";
    case Path::kAuto: return "auto";
    case Path::kQuantTail: return "quant-tail";
  }
  return "?";
}

// The swapped-operand kernel forced, with what the path names: a token tile (where auto picks another tile or
// kernel), mma.sync instead of wgmma, or the k split - stream-K where auto takes clusters, a cluster size (5: k
// ranges of unequal length), 16-token tiles in clusters of 4 at m > 16 (several m tiles); or clusters packed
// onto as few SMs as fit instead of spread.
inline GemmOptions forced_swap_options(Path path) {
  GemmOptions o;
  o.kernel = GemmOptions::Kernel::kSwap;
  switch (path) {
    case Path::kSwap8: o.swap_tokens = 8; break;
    case Path::kSwap16: o.swap_tokens = 16; break;
    case Path::kSwap32: o.swap_tokens = 32; break;
    case Path::kSwap64: o.swap_tokens = 64; break;
    case Path::kSwap128: o.swap_tokens = 128; break;
    case Path::kSwapMma: o.swap_wgmma = false; break;
    case Path::kSwapStreamK: o.swap_cluster = 1; break;
    case Path::kSwapCluster2: o.swap_cluster = 2; break;
    case Path::kSwapCluster5: o.swap_cluster = 5; break;
    case Path::kSwapCluster8: o.swap_cluster = 8; break;
    case Path::kSwapCluster16: o.swap_cluster = 16; break;
    case Path::kSwap16Cluster4: o.swap_tokens = 16, o.swap_cluster = 4; break;
    case Path::kSwap8Scaled: o.swap_tokens = 8, o.swap_defer_scales = false; break;
    case Path::kSwapPacked: o.swap_spread = false; break;
    default: break;
  }
  return o;
}

struct GemmCase {
  int64_t m, n, k;
  int bits;
  int64_t group;
  DType act;
  Path path;
};

inline std::string case_label(const GemmCase& g) {
  return std::string(path_label(g.path)) + " m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) +
         " k=" + std::to_string(g.k) + " int" + std::to_string(g.bits) + " g=" + std::to_string(g.group) + " " +
         dtype_label(g.act);
}

inline double rel_frobenius(const std::vector<double>& ref, const std::vector<float>& got) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

inline CheckResult check_gemm(Context& ctx, const GemmCase& g, double* err_out = nullptr) {
  const uint64_t seed = (uint64_t(ctx.rd()) << 32) | ctx.rd();
  std::mt19937_64 rng(seed);
  std::string label = case_label(g) + " seed=" + std::to_string(seed);
  const Checkpoint c = random_checkpoint(g.n, g.k, g.bits, g.group, g.act, rng);
  const bool dequant_only = g.path == Path::kDequant;
  std::vector<uint16_t> a_bits(size_t(g.m * g.k));
  std::vector<float> a(a_bits.size());
  std::uniform_real_distribution<float> ad(-1.f, 1.f);
  for (size_t i = 0; i < a.size(); ++i) {
    a_bits[i] = float_to_half_bits(ad(rng), g.act);
    a[i] = half_bits_to_float(a_bits[i], g.act);
  }
  RepackedWeight w;
  RTNQ_CHECK_CUDA_OR_FAIL(repacked_weight_alloc(g.n, g.k, g.bits, g.group, g.act, &w), label);
  DeviceBuffer<int32_t> d_packed(c.packed.size());
  DeviceBuffer<uint16_t> d_scales(c.scales.size());
  DeviceBuffer<uint16_t> d_a(a_bits.size());
  const size_t out_count = dequant_only ? size_t(g.n * g.k) : size_t(g.m * g.n);
  DeviceBuffer<uint16_t> d_c(out_count);
  const bool dense = g.path == Path::kDense || g.path == Path::kAutoCached || g.path == Path::kAuto;
  DeviceBuffer<uint16_t> d_scratch(dense ? size_t(g.n * g.k) : 0);
  auto run = [&]() -> CheckResult {
    if (!d_packed.ptr || !d_scales.ptr || !d_a.ptr || !d_c.ptr || !d_scratch.ptr)
      return {false, label + ": cudaMalloc failed"};
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(d_packed.ptr, c.packed.data(), c.packed.size() * 4, cudaMemcpyHostToDevice), label);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(d_scales.ptr, c.scales.data(), c.scales.size() * 2, cudaMemcpyHostToDevice), label);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(d_a.ptr, a_bits.data(), a_bits.size() * 2, cudaMemcpyHostToDevice), label);
    RTNQ_CHECK_CUDA_OR_FAIL(repack_weight(d_packed.ptr, d_scales.ptr, &w, ctx.stream), label);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemsetAsync(d_c.ptr, 0xFF, out_count * 2, ctx.stream), label);  // NaN in fp16 and bf16
    switch (g.path) {
      case Path::kQuant:
        if (g.m > 64) {  // the split auto gives the wide kernel, which it takes on every weight above 64 tokens
          const int split = gemm_wide_split_for(w, g.m, ctx.ws);
          label += split == kWideStreamK ? " wide=stream-K" : " wide=split" + std::to_string(split);
        }
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream), label);
        break;
      case Path::kQuantTail: {
        // Auto with any tail of up to 64 tokens past a multiple of 128 in a call of its own, whatever the weight.
        GemmOptions o;
        o.wide_tail = 64;
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, o), label);
        break;
      }
      case Path::kQuantNoSplit: {
        GemmOptions o;
        o.max_splits = 1;
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, o), label);
        break;
      }
      case Path::kQuantTile16:
      case Path::kQuantTile64: {
        GemmOptions o;
        o.m_tile_rows = g.path == Path::kQuantTile16 ? 16 : 64;
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, o), label);
        break;
      }
      case Path::kDecode: {  // the decode kernel forced, with its defaults (auto no longer picks it)
        GemmOptions o;
        o.kernel = GemmOptions::Kernel::kDecode;
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, o), label);
        break;
      }
      case Path::kQuantTiled:
      case Path::kDecodeLong: {
        // The tiled kernel where auto would pick the decode kernel; the decode kernel with long stripes that
        // cross strips (uneven: 7 batches) and without programmatic dependent launch.
        GemmOptions o;
        o.kernel = g.path == Path::kQuantTiled ? GemmOptions::Kernel::kTiled : GemmOptions::Kernel::kDecode;
        o.decode_min_batches = 7;
        o.pdl = false;
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, o), label);
        break;
      }
      case Path::kSwap8:
      case Path::kSwap16:
      case Path::kSwap32:
      case Path::kSwap64:
      case Path::kSwap128:
      case Path::kSwapMma:
      case Path::kSwapStreamK:
      case Path::kSwapCluster2:
      case Path::kSwapCluster5:
      case Path::kSwapCluster8:
      case Path::kSwapCluster16:
      case Path::kSwap16Cluster4:
      case Path::kSwap8Scaled:
      case Path::kSwapPacked:
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, forced_swap_options(g.path)),
                                label);
        break;
      case Path::kStrip:
      case Path::kStripOne:
      case Path::kStripPacked: {
        // The strip kernel forced: its own choice of blocks per strip (2 where twice the strips fit the SMs), one
        // block per strip, or blocks left unpadded (up to two a SM).
        GemmOptions o;
        o.kernel = GemmOptions::Kernel::kStrip;
        if (g.path == Path::kStripOne) o.strip_split = 1;
        if (g.path == Path::kStripPacked) o.strip_per_sm = 0;
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, o), label);
        break;
      }
      case Path::kWide:
      case Path::kWideOne:
      case Path::kWideSplit3:
      case Path::kWideMcast:
      case Path::kWide64:
      case Path::kWide128:
      case Path::kWideStreamK:
      case Path::kWide64StreamK: {
        // The wide kernel forced: its own split, one block a tile, clusters of 3 (k ranges of unequal length), or
        // one block a tile with multicast pairs where the column groups pair up (each block loads half of every
        // activation tile into both), or stream-K; its own token tile (64 up to m = 64), or 64 or 128 forced.
        GemmOptions o;
        o.kernel = GemmOptions::Kernel::kWide;
        if (g.path == Path::kWideOne || g.path == Path::kWideMcast) o.wide_split = 1;
        if (g.path == Path::kWideSplit3) o.wide_split = 3;
        if (g.path == Path::kWideMcast) o.wide_multicast = true;
        if (g.path == Path::kWide64) o.wide_tokens = 64;
        if (g.path == Path::kWide128) o.wide_tokens = 128;
        if (g.path == Path::kWideStreamK || g.path == Path::kWide64StreamK) o.wide_split = kWideStreamK;
        if (g.path == Path::kWide64StreamK) o.wide_tokens = 64;
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_quant(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, ctx.stream, o), label);
        break;
      }
      case Path::kDense:
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_dense(d_a.ptr, w, d_c.ptr, g.m, d_scratch.ptr, ctx.cublas, ctx.stream), label);
        break;
      case Path::kDequant: RTNQ_CHECK_CUDA_OR_FAIL(dequantize_repacked(w, d_c.ptr, ctx.stream), label); break;
      case Path::kAutoCached:
        // The copy a serving engine keeps: made once, then both sides of the crossover run on it.
        RTNQ_CHECK_CUDA_OR_FAIL(dequantize_repacked(w, d_scratch.ptr, ctx.stream), label);
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_auto_cached(d_a.ptr, w, d_scratch.ptr, d_c.ptr, g.m, ctx.ws, ctx.cublas, ctx.stream,
                                                 g.m > 100 ? 100 : 1000),
                                label);
        break;
      case Path::kAuto:
        // Dequantized into scratch on every call above the crossover.
        RTNQ_CHECK_CUDA_OR_FAIL(gemm_auto(d_a.ptr, w, d_c.ptr, g.m, ctx.ws, d_scratch.ptr, ctx.cublas, ctx.stream,
                                          g.m > 100 ? 100 : 1000),
                                label);
        break;
    }
    RTNQ_CHECK_CUDA_OR_FAIL(cudaStreamSynchronize(ctx.stream), label);
    std::vector<uint16_t> out(out_count);
    RTNQ_CHECK_CUDA_OR_FAIL(cudaMemcpy(out.data(), d_c.ptr, out.size() * 2, cudaMemcpyDeviceToHost), label);
    std::vector<float> got(out.size());
    for (size_t i = 0; i < out.size(); ++i) {
      got[i] = half_bits_to_float(out[i], g.act);
      if (!std::isfinite(got[i])) return {false, label + ": element " + std::to_string(i) + " not written / not finite"};
    }
    if (dequant_only) {
      // Dense dequantization must be exact: q*s rounded once to the activation dtype.
      for (size_t i = 0; i < got.size(); ++i) {
        const float want = half_bits_to_float(float_to_half_bits(c.dequant[i], g.act), g.act);
        if (got[i] != want) return {false, label + ": dequantized element " + std::to_string(i) + " differs"};
      }
      return {true, label};
    }
    const std::vector<double> ref = reference_product(a, c.dequant, g.m, g.n, g.k);
    const double err = rel_frobenius(ref, got);
    if (err_out) *err_out = err;
    const double tol = g.act == DType::kF16 ? 2e-3 : 1e-2;
    char buf[96];
    std::snprintf(buf, sizeof buf, " rel_err=%.3g tol=%.0e", err, tol);
    return {err <= tol, label + buf};
  };
  const CheckResult r = run();
  repacked_weight_free(&w);
  return r;
}

// The table. Full m list on SmolLM2 shapes (K = 576: a padded k tile; 576/64 = 9 and 576/128 = 4.5 groups);
// a subset of m on the Llama-3 8B, 70B and 405B shapes, where the fp64 reference dominates the run time.
inline std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> cases;
  const DType acts[2] = {DType::kF16, DType::kBF16};
  const int64_t all_m[] = {1, 2, 3, 7, 16, 17, 63, 64, 65, 255, 256, 1025, 4096};
  struct Shape { int64_t k, n; };
  const Shape smol[] = {{576, 576}, {576, 192}, {576, 3072}, {1536, 576}};
  const Shape l8b[] = {{4096, 6144}, {4096, 4096}, {4096, 28672}, {14336, 4096}};
  const Shape l70b[] = {{8192, 10240}, {8192, 8192}, {8192, 57344}, {28672, 8192}};
  for (int bits : {4, 8}) {
    for (DType act : acts) {
      for (int64_t m : all_m) {
        cases.push_back({m, 576, 576, bits, 64, act, Path::kQuant});
        if (m <= 256) cases.push_back({m, 3072, 576, bits, 128, act, Path::kQuant});
      }
      for (const Shape& s : smol) {
        cases.push_back({7, s.n, s.k, bits, 128, act, Path::kQuant});
        cases.push_back({33, s.n, s.k, bits, -1, act, Path::kQuant});
        cases.push_back({5, s.n, s.k, bits, 32, act, Path::kQuantNoSplit});
      }
      for (const Shape& s : l8b) {
        cases.push_back({1, s.n, s.k, bits, 128, act, Path::kQuant});
        cases.push_back({17, s.n, s.k, bits, 128, act, Path::kQuant});
      }
      // 16-token tiles on long k: INT4 auto takes clusters of up to 16 batches a block there (8B down: 16, 70B o: 8).
      cases.push_back({12, 4096, 14336, bits, 128, act, Path::kQuant});
      cases.push_back({16, 8192, 8192, bits, 128, act, Path::kQuant});
      cases.push_back({64, 4096, 4096, bits, -1, act, Path::kQuant});
      for (int64_t m : {1, 17, 64}) cases.push_back({m, 3072, 576, bits, 64, act, Path::kQuantTile64});
      for (int64_t m : {65, 256, 1025}) cases.push_back({m, 1536, 576, bits, 128, act, Path::kQuantTile16});
      cases.push_back({3, 4096, 14336, bits, 64, act, Path::kQuantNoSplit});
      // The tiled kernel is never picked by default: keep it checked at small m, and the decode
      // kernel with long stripes, small groups (scales per unit), odd n (scalar atomics) and per-channel.
      for (int64_t m : {1, 3, 16}) cases.push_back({m, 3072, 576, bits, 64, act, Path::kQuantTiled});
      cases.push_back({1, 4096, 4096, bits, 128, act, Path::kQuantTiled});
      for (int64_t m : {1, 4, 16}) cases.push_back({m, 4096, 4096, bits, 128, act, Path::kDecode});
      for (int64_t m : {1, 5, 9, 16}) {
        cases.push_back({m, 576, 576, bits, 64, act, Path::kDecodeLong});
        cases.push_back({m, 4096, 14336, bits, 128, act, Path::kDecodeLong});
      }
      cases.push_back({2, 301, 256, bits, 16, act, Path::kQuant});
      cases.push_back({11, 301, 256, bits, 16, act, Path::kDecodeLong});
      cases.push_back({4, 1000, 1536, bits, 32, act, Path::kQuant});
      cases.push_back({13, 333, 200, bits, -1, act, Path::kDecodeLong});
      // Every m > 1 runs the swapped-operand kernel by default: small groups (4 and 2 scale rows per stage), odd m
      // (scalar atomics), odd n, per-channel, several m tiles, whole tiles only, and each token tile forced.
      cases.push_back({17, 301, 256, bits, 16, act, Path::kQuant});
      cases.push_back({40, 1000, 1536, bits, 32, act, Path::kQuant});
      cases.push_back({37, 333, 200, bits, -1, act, Path::kQuant});
      cases.push_back({50, 576, 576, bits, 64, act, Path::kQuantNoSplit});
      cases.push_back({130, 4096, 4096, bits, 128, act, Path::kQuant});
      // A short tail past a multiple of 128 tokens in a call of its own (wide_tail_max): 8 tokens on a 25M weight
      // and 32 on a 117M one (the swapped-operand kernel), 1 after a 256-token head (the strip kernel); and, forced,
      // 64 (the wide kernel's 64-token tiles) and odd shapes and small groups (tails of 22, 42 and 1 token).
      cases.push_back({136, 6144, 4096, bits, 128, act, Path::kQuant});
      cases.push_back({160, 28672, 4096, bits, 128, act, Path::kQuant});
      cases.push_back({257, 6144, 4096, bits, 64, act, Path::kQuant});
      cases.push_back({192, 28672, 4096, bits, 128, act, Path::kQuantTail});
      cases.push_back({150, 1000, 1536, bits, 32, act, Path::kQuantTail});
      cases.push_back({170, 333, 200, bits, -1, act, Path::kQuantTail});
      cases.push_back({129, 301, 256, bits, 16, act, Path::kQuantTail});
      // 65-128 tokens on weights up to 6144 wide: two 64-token tiles in clusters (a part-filled second one at 100).
      cases.push_back({100, 6144, 4096, bits, 128, act, Path::kQuant});
      cases.push_back({128, 4096, 14336, bits, 128, act, Path::kQuant});
      for (int64_t m : {1, 5, 16, 35}) cases.push_back({m, 4096, 14336, bits, 128, act, Path::kSwap16});
      // 8-token tiles (auto up to m = 8) forced past 8: several m tiles, stream-K and clusters of 4, odd n, small
      // groups and per-channel.
      for (int64_t m : {9, 23}) cases.push_back({m, 4096, 14336, bits, 128, act, Path::kSwap8});
      cases.push_back({17, 1000, 1536, bits, 32, act, Path::kSwap8});
      cases.push_back({11, 333, 200, bits, -1, act, Path::kSwap8});
      for (int64_t m : {3, 65}) cases.push_back({m, 301, 256, bits, 16, act, Path::kSwap32});
      for (int64_t m : {9, 100}) cases.push_back({m, 1000, 1536, bits, 32, act, Path::kSwap64});
      for (int64_t m : {3, 17, 64, 130}) cases.push_back({m, 576, 576, bits, 64, act, Path::kSwapMma});
      for (int64_t m : {3, 128, 200}) cases.push_back({m, 301, 256, bits, 16, act, Path::kSwap128});
      cases.push_back({129, 1000, 1536, bits, 32, act, Path::kSwap128});
      cases.push_back({97, 333, 200, bits, -1, act, Path::kSwap128});
      cases.push_back({40, 1000, 1536, bits, 32, act, Path::kSwapMma});
      // Cluster split-k (auto at small m wherever the tiles are few) and stream-K forced where auto would take
      // clusters: cluster sizes 2, 5 (k ranges of unequal length) and 16, odd m and n, small groups, per-channel.
      for (int64_t m : {1, 16, 40}) cases.push_back({m, 4096, 4096, bits, 128, act, Path::kSwapStreamK});
      cases.push_back({3, 301, 256, bits, 16, act, Path::kSwapStreamK});
      for (int64_t m : {2, 33, 64}) cases.push_back({m, 333, 200, bits, -1, act, Path::kSwapCluster2});
      for (int64_t m : {3, 17, 50}) cases.push_back({m, 1000, 1536, bits, 32, act, Path::kSwapCluster5});
      for (int64_t m : {1, 7, 64}) cases.push_back({m, 4096, 14336, bits, 128, act, Path::kSwapCluster16});
      // Clusters of 8 at 32 and 64 tokens: part-filled token tiles, a last column group of 2 strips with n past
      // its last column (1000), and whole tiles of a 6144-wide weight.
      for (int64_t m : {24, 50}) cases.push_back({m, 1000, 1536, bits, 32, act, Path::kSwapCluster8});
      cases.push_back({64, 6144, 4096, bits, 128, act, Path::kSwapCluster8});
      cases.push_back({31, 576, 3072, bits, 64, act, Path::kSwapCluster16});
      for (int64_t m : {17, 40}) cases.push_back({m, 1000, 1536, bits, 32, act, Path::kSwap16Cluster4});
      cases.push_back({33, 4096, 4096, bits, 128, act, Path::kSwapMma});
      // Clusters launched without the shared-memory padding that spreads them (auto spreads them).
      cases.push_back({1, 4096, 4096, bits, 128, act, Path::kSwapPacked});
      cases.push_back({16, 6144, 4096, bits, 128, act, Path::kSwapPacked});
      // INT4 8-token tiles scale per group after the MMA (groups of 64 and up): groups of 4 stages (folded at
      // group ends inside a block's k range, and at stream-K stripe ends inside a group), and the per-weight
      // scaling they replace, forced (16-token tiles and INT8 always scale per weight).
      for (int64_t m : {1, 7, 9}) cases.push_back({m, 4096, 4096, bits, 256, act, Path::kQuant});
      cases.push_back({5, 4096, 4096, bits, 256, act, Path::kSwapStreamK});
      for (int64_t m : {1, 16}) cases.push_back({m, 4096, 14336, bits, 128, act, Path::kSwap8Scaled});
      cases.push_back({3, 576, 1536, bits, -1, act, Path::kSwap8Scaled});
      // The strip kernel (auto at m <= 16 where the strips fill the SMs: 8B qkv, o, down, 70B o, down): clusters
      // of two blocks a strip with scale groups folded inside a warp's k range (groups of 256), odd n and
      // per-channel, k so short that warps get no batch (k = 200: 2 batches a block), groups of 64; one block a
      // strip; unpadded blocks; token tiles of 8 and 16.
      for (int64_t m : {1, 3, 8, 9, 16}) {  // token tiles of 8 and 16
        cases.push_back({m, 4096, 4096, bits, 128, act, Path::kStrip});
        cases.push_back({m, 4096, 14336, bits, 256, act, Path::kStrip});
      }
      cases.push_back({13, 1000, 1536, bits, -1, act, Path::kStrip});
      cases.push_back({12, 8192, 8192, bits, 128, act, Path::kStripOne});
      cases.push_back({5, 1000, 1536, bits, -1, act, Path::kStrip});
      cases.push_back({2, 333, 200, bits, -1, act, Path::kStrip});
      cases.push_back({7, 576, 576, bits, 64, act, Path::kStrip});
      cases.push_back({1, 8192, 8192, bits, 128, act, Path::kStripOne});
      cases.push_back({6, 1000, 1536, bits, 64, act, Path::kStripOne});
      cases.push_back({4, 4096, 4096, bits, 128, act, Path::kStripPacked});
      // The wide kernel (forced): part-filled and several token tiles, a last column group of 2 strips (333 and 301
      // wide, n past its last column), n past the last column of a whole group (1000), groups of 16, 32 and 64,
      // per-channel, k off the 64-deep stage (200, 576), its own split, one block a tile, clusters of 3.
      for (int64_t m : {1, 100, 128, 129, 300}) cases.push_back({m, 4096, 4096, bits, 128, act, Path::kWide});
      cases.push_back({256, 6144, 4096, bits, 128, act, Path::kWide});
      cases.push_back({200, 1000, 1536, bits, 32, act, Path::kWide});
      cases.push_back({77, 301, 256, bits, 16, act, Path::kWide});
      cases.push_back({260, 333, 200, bits, -1, act, Path::kWide});
      cases.push_back({131, 576, 576, bits, 64, act, Path::kWideMcast});    // 3 column groups: no pairs
      cases.push_back({256, 4096, 14336, bits, 128, act, Path::kWideMcast});  // 16: multicast pairs
      cases.push_back({300, 1000, 1536, bits, 32, act, Path::kWideMcast});    // 4
      cases.push_back({200, 301, 256, bits, 16, act, Path::kWideMcast});      // 2, the second 2 strips wide
      cases.push_back({250, 4096, 4096, bits, 128, act, Path::kWideOne});
      for (int64_t m : {5, 256}) cases.push_back({m, 1000, 1536, bits, 32, act, Path::kWideSplit3});
      cases.push_back({140, 4096, 4096, bits, 256, act, Path::kWideSplit3});
      // 64-token tiles (the wide kernel's own choice up to m = 64, forced above): part-filled and several token
      // tiles, whole tiles of a 6144-wide weight, small groups, per-channel, long k (clusters of up to 8), multicast
      // pairs; and 128-token tiles forced at m <= 64.
      for (int64_t m : {33, 64}) cases.push_back({m, 4096, 4096, bits, 128, act, Path::kWide});
      for (int64_t m : {1, 17, 64, 65, 130}) cases.push_back({m, 4096, 4096, bits, 128, act, Path::kWide64});
      cases.push_back({64, 6144, 4096, bits, 128, act, Path::kWide64});
      cases.push_back({48, 4096, 14336, bits, 128, act, Path::kWide64});
      cases.push_back({200, 1000, 1536, bits, 32, act, Path::kWide64});
      cases.push_back({40, 301, 256, bits, 16, act, Path::kWide64});
      cases.push_back({100, 333, 200, bits, -1, act, Path::kWide64});
      cases.push_back({40, 4096, 14336, bits, 128, act, Path::kWideMcast});  // 16 column groups: pairs
      cases.push_back({64, 1000, 1536, bits, 32, act, Path::kWideMcast});     // 4
      cases.push_back({50, 576, 576, bits, 64, act, Path::kWideSplit3});
      for (int64_t m : {5, 64}) cases.push_back({m, 4096, 4096, bits, 128, act, Path::kWide128});
      // Stream-K (132 blocks on an H100): tiles shared by 3 blocks (6144 x 4096 at m = 256, 23 stages a block), by
      // ~11 (1000 x 1536), one stage a block with an odd m and groups of 16, long k (54 stages a
      // block over 224-stage tiles), per-channel with k off the stage, whole tiles beside cut ones (12288 x 256:
      // 144 tiles of 4 stages, 4-5 stages a block), one token; and 64-token tiles.
      cases.push_back({256, 6144, 4096, bits, 128, act, Path::kWideStreamK});
      cases.push_back({300, 1000, 1536, bits, 32, act, Path::kWideStreamK});
      cases.push_back({77, 301, 256, bits, 16, act, Path::kWideStreamK});
      cases.push_back({129, 4096, 14336, bits, 128, act, Path::kWideStreamK});
      cases.push_back({260, 333, 200, bits, -1, act, Path::kWideStreamK});
      cases.push_back({300, 12288, 256, bits, 64, act, Path::kWideStreamK});
      cases.push_back({1, 4096, 4096, bits, 128, act, Path::kWideStreamK});
      cases.push_back({64, 4096, 4096, bits, 128, act, Path::kWide64StreamK});
      cases.push_back({101, 333, 200, bits, -1, act, Path::kWide64StreamK});
      cases.push_back({300, 1536, 576, bits, 128, act, Path::kDense});
      cases.push_back({1025, 576, 1536, bits, 64, act, Path::kDense});
      cases.push_back({0, 576, 1536, bits, 64, act, Path::kDequant});
      cases.push_back({300, 1536, 576, bits, 128, act, Path::kAutoCached});  // cuBLAS side (crossover 100)
      cases.push_back({9, 1536, 576, bits, 128, act, Path::kAutoCached});    // fused side (crossover 1000)
      cases.push_back({300, 1536, 576, bits, 128, act, Path::kAuto});        // dequantize + cuBLAS (crossover 100)
      cases.push_back({9, 1536, 576, bits, 128, act, Path::kAuto});          // fused side (crossover 1000)
      cases.push_back({0, 300, 200, bits, -1, act, Path::kDequant});
    }
  }
  for (const Shape& s : l70b) {
    cases.push_back({1, s.n, s.k, 4, 128, DType::kBF16, Path::kQuant});
    cases.push_back({2, s.n, s.k, 8, 128, DType::kF16, Path::kQuant});
  }
  // INT4 8-token tiles on long k: auto takes spread clusters of up to 16 batches a block there (70B qkv and o: 8,
  // 8B down: 16); with groups of 256 the deferred scales fold at block ends inside a group (14 batches a block).
  cases.push_back({3, 10240, 8192, 4, 128, DType::kF16, Path::kQuant});
  cases.push_back({8, 4096, 14336, 4, 256, DType::kBF16, Path::kQuant});
  // 8B qkv at 16 tokens: clusters of 8 instead of 16 (whose 384 blocks would pack the SMs).
  cases.push_back({12, 6144, 4096, 4, 128, DType::kF16, Path::kQuant});
  cases.push_back({4096, 4096, 4096, 4, 128, DType::kBF16, Path::kQuant});
  cases.push_back({7, 300, 200, 4, -1, DType::kF16, Path::kQuant});  // n and k off every tile
  // Llama-3.1 405B (hidden 16384, intermediate 53248, 8 KV heads): the largest weights (gate_up 1.74G, 3.5 GB as
  // BF16, past 32-bit byte offsets), a few m each where the fp64 reference stays within seconds; last in the table,
  // as the host's random weights for them take the longest.
  cases.push_back({1, 106496, 16384, 4, 128, DType::kBF16, Path::kQuant});  // gate_up: swapped-operand kernel
  cases.push_back({2, 16384, 53248, 8, 128, DType::kF16, Path::kQuant});    // down
  cases.push_back({17, 16384, 16384, 4, 128, DType::kF16, Path::kQuant});   // o
  cases.push_back({48, 16384, 53248, 4, 128, DType::kBF16, Path::kQuant});  // down: 64-token wide tiles
  cases.push_back({65, 18432, 16384, 4, 128, DType::kBF16, Path::kQuant});  // qkv: 128-token wide tiles
  cases.push_back({3, 18432, 16384, 8, -1, DType::kBF16, Path::kQuant});    // qkv, per-channel
  // qkv at 130 tokens: a 128-token head in stream-K (72 tiles on 132 SMs, wide-split.h) and a 2-token tail in a call
  // of its own (wide_tail_max); INT8, groups of 64.
  cases.push_back({130, 18432, 16384, 8, 64, DType::kF16, Path::kQuant});
  return cases;
}

struct RepackCase {
  int64_t n, k;
  int bits;
  int64_t group;
};
inline std::vector<RepackCase> repack_cases() {
  return {{576, 576, 4, 128}, {192, 576, 8, 64}, {300, 200, 4, -1}, {300, 200, 8, -1},
          {4096, 4096, 4, 128}, {1000, 1536, 8, 32}, {64, 8, 4, -1}};
}

// Bad arguments come back as errors, never a crash or a wrong result.
inline CheckResult check_rejections(Context& ctx) {
  RepackedWeight w;
  if (repacked_weight_alloc(256, 256, 4, 128, DType::kF16, &w) != cudaSuccess) return {false, "alloc failed"};
  DeviceBuffer<uint16_t> a(256 * 40 + 8), c(256 * 40);
  std::string bad;
  auto expect_error = [&](cudaError_t e, const char* what) {
    if (e == cudaSuccess) bad += std::string(what) + " accepted; ";
    else if (std::string(gemm_error_message()).empty()) bad += std::string(what) + " gave no message; ";
  };
  expect_error(gemm_quant(a.ptr, w, c.ptr, 0, ctx.ws, ctx.stream), "m = 0");
  expect_error(gemm_quant(a.ptr + 1, w, c.ptr, 4, ctx.ws, ctx.stream), "misaligned a");
  expect_error(gemm_quant(nullptr, w, c.ptr, 4, ctx.ws, ctx.stream), "null a");
  GemmOptions bad_tile;
  bad_tile.m_tile_rows = 32;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_tile), "m_tile_rows 32");
  GemmOptions decode_only;
  decode_only.kernel = GemmOptions::Kernel::kDecode;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 17, ctx.ws, ctx.stream, decode_only), "decode kernel at m = 17");
  GemmOptions bad_swap;
  bad_swap.swap_tokens = 48;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 40, ctx.ws, ctx.stream, bad_swap), "swap_tokens 48");
  GemmOptions bad_cluster;
  bad_cluster.swap_cluster = 17;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_cluster), "swap_cluster 17");
  bad_cluster.swap_cluster = 5;  // the 256-deep weight has 4 k batches
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_cluster), "swap_cluster 5 > 4 k batches");
  GemmOptions mma8;
  mma8.swap_tokens = 8;
  mma8.swap_wgmma = false;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, mma8), "swap_tokens 8 with mma.sync");
  bad_cluster.swap_cluster = 2;
  bad_cluster.swap_tokens = 128;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_cluster), "swap_cluster with 128 tokens");
  GemmOptions strip;
  strip.kernel = GemmOptions::Kernel::kStrip;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 17, ctx.ws, ctx.stream, strip), "strip kernel at m = 17");
  GemmOptions bad_wide;
  bad_wide.kernel = GemmOptions::Kernel::kWide;
  bad_wide.wide_split = 9;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_wide), "wide_split 9");
  bad_wide.wide_split = -2;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_wide), "wide_split -2");
  bad_wide.wide_split = 5;  // the 256-deep weight has 4 k batches
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_wide), "wide_split 5 > 4 k batches");
  bad_wide.wide_split = 0;
  bad_wide.wide_tokens = 96;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_wide), "wide_tokens 96");
  GemmOptions bad_strip = strip;
  bad_strip.strip_split = 3;
  expect_error(gemm_quant(a.ptr, w, c.ptr, 4, ctx.ws, ctx.stream, bad_strip), "strip_split 3");
  RepackedWeight bad_bits = w;
  bad_bits.shape.bits = 3;
  expect_error(gemm_quant(a.ptr, bad_bits, c.ptr, 4, ctx.ws, ctx.stream), "bits = 3");
  RepackedWeight bad_act = w;
  bad_act.act = DType::kF32;
  expect_error(gemm_quant(a.ptr, bad_act, c.ptr, 4, ctx.ws, ctx.stream), "f32 activations");
  RepackedWeight bad_group = w;
  bad_group.shape = make_repack_shape(256, 1024, 4, 96);
  expect_error(gemm_quant(a.ptr, bad_group, c.ptr, 4, ctx.ws, ctx.stream), "group 96");
  RepackedWeight group32 = w;
  group32.shape = make_repack_shape(256, 64, 4, 32);  // no larger than the buffers
  expect_error(gemm_quant(a.ptr, group32, c.ptr, 4, ctx.ws, ctx.stream, strip), "strip kernel with groups of 32");
  RepackedWeight bad_k = w;
  bad_k.shape = make_repack_shape(256, 100, 4, -1);
  expect_error(gemm_quant(a.ptr, bad_k, c.ptr, 4, ctx.ws, ctx.stream), "k = 100");
  expect_error(repacked_weight_alloc(0, 256, 4, 128, DType::kF16, &bad_k), "n = 0 alloc");
  repacked_weight_free(&w);
  (void)cudaGetLastError();
  return {bad.empty(), bad.empty() ? "rejections" : bad};
}

}  // namespace rtnq::cuda::checks
