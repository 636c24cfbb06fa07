// Mixed-precision GEMM on NVIDIA tensor cores: C[m, n] = A[m, k] * dequant(W)[n, k]^T, with W in INT4 or INT8
// (symmetric, per-group or per-channel scales), A and C in FP16 or BF16, fp32 accumulation.
//
// Life of a weight: the checkpoint tensors (weight_packed int32 [n, k*bits/32], weight_scale [n, groups]) are
// repacked ONCE on the GPU into the fragment order of repack-layout.h (repack_weight), then used by
//   gemm_quant  - the fused dequantize-and-multiply kernel (memory-bound small m: decoding), or
//   gemm_dense  - dequantize into a scratch buffer, then cuBLAS (compute-bound large m), or
//   gemm_auto   - picks between the two at a crossover m measured per shape and card (bench/gemm.cu).
//
// Every function validates its arguments and returns a cudaError_t (cudaErrorInvalidValue for bad shapes,
// dtypes, alignment or sizes; cudaErrorNotSupported for unsupported combinations); launch errors are checked
// after every launch. Nothing here aborts or throws. gemm_error_message() explains the last rejection on this
// host thread in words.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda/repack-layout.h"
#include "rtnq/dtype.h"

namespace rtnq::cuda {

// A repacked weight on the device. Buffers are owned by the caller (see repacked_weight_alloc for a helper).
struct RepackedWeight {
  RepackShape shape;
  DType act = DType::kBF16;       // activation dtype; the scales are stored in it
  uint32_t* words = nullptr;      // repacked_weight_words(shape)
  void* scales = nullptr;         // repacked_scale_count(shape) x 2 bytes
};

// Allocates (cudaMalloc) the buffers of a repacked weight; free with repacked_weight_free.
cudaError_t repacked_weight_alloc(int64_t n, int64_t k, int bits, int64_t group_size, DType act, RepackedWeight* out);
void repacked_weight_free(RepackedWeight* w);

// Repacks checkpoint tensors already on the device into `out` (allocated for the same n, k, bits, group).
//   packed: int32 [n, packed_row_words(k, bits)]; scales: [n, num_groups] in out->act.
// Accepted: bits 4 or 8; act F16 or BF16; k % 8 == 0; a group that divides 128 (16, 32, 64), a multiple of 128,
// or per-channel (group_size <= 0 or >= k).
cudaError_t repack_weight(const int32_t* packed, const void* scales, RepackedWeight* out, cudaStream_t stream);

// Split-k partial sums and per-tile arrival counters. Zero when created and left zero by every completed call
// (the last block of a tile cleans up), so it can be reused by calls on one stream without a memset.
struct GemmWorkspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};
size_t gemm_workspace_bytes(int64_t max_m, int64_t max_n);
cudaError_t gemm_workspace_alloc(int64_t max_m, int64_t max_n, GemmWorkspace* ws, cudaStream_t stream);
void gemm_workspace_free(GemmWorkspace* ws);

inline constexpr int kWideStreamK = -1;  // GemmOptions::wide_split: stream-K

struct GemmOptions {
  // 0: stream-K - one stripe of the (tile, k tile) work per resident block, tiles cut between blocks wherever
  // the stripes fall; 1: whole tiles per block (no workspace used); > 1: at most that many blocks per tile.
  int max_splits = 0;
  // Rows of A per block: 0 chooses (16 up to a measured m, then 64); 16 or 64 forces one (benchmarks, tests).
  int m_tile_rows = 0;
  // Which fused kernel: kAuto takes the strip kernel (gemm-strip-kernel.cuh) at m <= 16 where a linear's
  // 64-column strips fill the SMs at one or two blocks a strip (auto_strip_split in gemm.cu), the wide kernel
  // (gemm-wide-kernel.cuh: warp-specialized, 64- or 128-token tiles) above kWideAutoMinM tokens (at up to 64
  // tokens only on weights under 64M or at least 16384 wide: gemm.cu, wide_small_tiles_pay), else the
  // swapped-operand kernel (gemm-swap-kernel.cuh); the others force one: the strip kernel (m <= 16, groups of 64
  // and up or per-channel), the swapped-operand kernel, the wide kernel (any m), the decode kernel (per-warp weight
  // streams, gemm-decode-kernel.cuh; m <= 16 only) or the tiled kernel (gemm-kernel.cuh; also m_tile_rows != 0).
  // Auto never picks the last two: slower at every m measured.
  enum class Kernel : uint8_t { kAuto, kTiled, kDecode, kSwap, kStrip, kWide };
  Kernel kernel = Kernel::kAuto;
  // Wide kernel: blocks per tile (cluster split-k), 1..8; kWideStreamK (-1): stream-K (one block per SM, each a
  // range of the (tile, 64-deep stage) work; needs the workspace, else as 0); 0 chooses (wide-split.h's rule).
  int wide_split = 0;
  // Wide kernel, wide_split = 0: whether the choice may be stream-K (false: cluster splits only, as before the
  // twentieth session; benchmarks time the two against each other).
  bool wide_auto_streamk = true;
  // Wide kernel: tokens per block tile, 64 or 128; 0 chooses (64 up to m = 64, else 128).
  int wide_tokens = 0;
  // Auto above 128 tokens: the last m % 128 tokens, where they are few, go to a second call of their own (tiles
  // sized for them) instead of a 128-token tile that is mostly zeros. -1: where wide-split.h's rule says it pays
  // (wide_tail_max: tails of up to 32 tokens from 100M weights, 8 from 20M); 0: never; 1..64: tails of up to this
  // many tokens, whatever the weight.
  int wide_tail = -1;
  // Wide kernel without split-k: pairs of blocks on neighbouring column groups load each activation tile once for
  // both (TMA multicast in clusters of two). Off by default: slower on every linear timed (H100, 8B gate_up at
  // m = 256: 183.5 vs 165.4 us; docs/perf-notes.md, fifteenth session).
  bool wide_multicast = false;
  // The swap_* options below apply wherever the swapped-operand kernel runs: forced (kSwap), or auto up to
  // kWideAutoMinM tokens. Above that, auto runs the wide kernel, which ignores them.
  // Swapped-operand kernel: tokens per block tile, 8 (wgmma only), 16, 32, 64 or 128 (wgmma only); 0 chooses the
  // smallest that holds m (128 above 64 with wgmma, except 64 up to m = 128 on weights at most kSwapTwoTileMaxN
  // wide; 64 with mma.sync; 8 only with wgmma).
  int swap_tokens = 0;
  // Swapped-operand kernel: each block streams at least this many 64-deep k batches (0 = one block per
  // resident slot). Fewer, longer stripes mean fewer split-k partial sums ([tokens x 256] fp32 each).
  int swap_min_iters = 0;
  // Swapped-operand kernel, how k is split: 0 chooses (cluster split-k where every tile gets >= 2 blocks of one
  // wave, else stream-K); 1 stream-K always; 2..16 clusters of that many blocks per tile (token tiles <= 64,
  // at most one block per 64-deep k batch; an error if the card cannot hold such a cluster).
  int swap_cluster = 0;
  // Swapped-operand kernel, cluster split-k: launch with the fewest blocks per SM that still hold every cluster
  // at once (padding each block's shared memory), so the clusters spread over the SMs instead of packing onto as
  // few as fit; false packs them.
  bool swap_spread = true;
  // Swapped-operand kernel: warpgroup MMAs (wgmma, sm_90a) instead of mma.sync.
  bool swap_wgmma = true;
  // Swapped-operand kernel, INT4, 8-token tiles with wgmma, groups of 64 and up: multiply the integer
  // weights and apply the scales per group in fp32 after the MMA (fewer dequantization instructions); false scales
  // each weight before the MMA, as every other path does.
  bool swap_defer_scales = true;
  // Strip kernel: blocks per strip, 1 or 2 (a cluster); 0 chooses (auto's rule where it applies, else 2 where
  // twice the strips fit the SMs).
  int strip_split = 0;
  // Strip kernel: pad each block's shared memory so that at most this many blocks share an SM (1 or 2); 0 leaves
  // it unpadded.
  int strip_per_sm = 1;
  // Decode kernel: each warp streams at least this many 2 KB weight batches (0 = as many warps as the card
  // holds at once, however little each gets). Fewer, longer streams mean fewer split-k hand-offs.
  int decode_min_batches = 0;
  // Decode kernel: launch with programmatic stream serialization, so its weight prefetch overlaps the tail of
  // the kernel before it in the stream (it waits for that kernel before reading A or the workspace).
  bool pdl = true;
};

// Fused kernel. a: [m, k] row-major, 16-byte aligned; c: [m, n] row-major. dtype of a and c is w.act.
// A workspace too small for this call just disables stream-K split-k (slower, still correct); cluster split-k
// needs none.
cudaError_t gemm_quant(const void* a, const RepackedWeight& w, void* c, int64_t m, const GemmWorkspace& ws,
                       cudaStream_t stream, const GemmOptions& opt = {});

// The k split the wide kernel takes for this call when it runs it (forced, or auto above kWideAutoMinM tokens; auto:
// of its first call where it splits off a short tail): blocks per tile, or kWideStreamK; 0 for a weight, m or
// options gemm_quant rejects. For benchmarks and tests.
int gemm_wide_split_for(const RepackedWeight& w, int64_t m, const GemmWorkspace& ws, const GemmOptions& opt = {});

// Dequantizes w into dense [n, k] row-major (dtype w.act). `dense` needs n*k*2 bytes.
cudaError_t dequantize_repacked(const RepackedWeight& w, void* dense, cudaStream_t stream);

// cuBLAS path: dequantize into `scratch` (n*k*2 bytes) then one cublasGemmEx with fp32 accumulation.
// The handle must already be bound to `stream`.
cudaError_t gemm_dense(const void* a, const RepackedWeight& w, void* c, int64_t m, void* scratch,
                       cublasHandle_t handle, cudaStream_t stream);

// Plain cuBLAS C = A * B^T for dense fp16/bf16 B [n, k] (used by gemm_dense and as the benchmark's baseline).
cudaError_t cublas_gemm_nt(const void* a, const void* b, void* c, int64_t m, int64_t n, int64_t k, DType act,
                           cublasHandle_t handle);

// At 65-128 tokens the swapped-operand kernel runs weights at most this wide (24 column groups of 256) as two
// 64-token tiles in clusters instead of one 128-token tile in stream-K (gemm.cu).
inline constexpr int64_t kSwapTwoTileMaxN = 6144;

// Above this many tokens gemm_quant's auto choice is the wide kernel (gemm.cu: 64-token tiles up to 64 tokens where
// wide_small_tiles_pay, 128 above); the default crossover counts on it. H100, seventeenth session
// (docs/perf-notes.md): at 48 tokens the wide kernel's 8B layer takes 85.2 us against 87.8 for the swapped-operand
// kernel; at 32 the latter's 32-token tiles win by far (8B gate_up 28.9 vs 40.6 with the kernel of that run).
inline constexpr int64_t kWideAutoMinM = 40;

// Crossover m above which gemm_auto takes the cuBLAS path, for a card whose HBM peaks at hbm_gbs (GB/s). Measured
// by bench/gemm.cu on an H100 80GB HBM3 (3.35 TB/s peak) and an H200 (4.8 TB/s; see docs/perf-notes.md, "## CUDA
// GEMM"): cuBLAS on a dense copy is bound by the weight bytes at these m, so the more bandwidth, the earlier it
// wins. Cards from kHighBandwidthGbs on take the H200's values, slower ones the H100's. A caller with its own
// measurement (bench-gemm --cross) passes it to gemm_auto instead.
inline constexpr double kHighBandwidthGbs = 4000;
int64_t dense_crossover_m_for(int64_t n, int64_t k, int bits, double hbm_gbs);
// The same for the current device (its peak from card_peak_hbm_gbs).
int64_t default_dense_crossover_m(int64_t n, int64_t k, int bits);
// The current device's peak HBM bandwidth in GB/s (memory clock x bus width x 2), 0 where the driver does not say.
double card_peak_hbm_gbs();

// Crossover m above which gemm_auto, which dequantizes the weight into scratch on every call, takes the cuBLAS path.
// Not the kept copy's crossover: writing the dense weight out and reading it back costs as much as the product up to
// a few hundred tokens, so the fused kernel stays ahead several times longer (docs/perf-notes.md, twenty-first
// session; bench-gemm --cross measures both).
int64_t dequant_crossover_m_for(int64_t n, int64_t k, int bits, double hbm_gbs);
// The same for the current device.
int64_t default_dequant_crossover_m(int64_t n, int64_t k, int bits);

// m <= crossover: gemm_quant; else gemm_dense (scratch must then hold n*k*2 bytes). crossover < 0:
// default_dequant_crossover_m.
cudaError_t gemm_auto(const void* a, const RepackedWeight& w, void* c, int64_t m, const GemmWorkspace& ws,
                      void* scratch, cublasHandle_t handle, cudaStream_t stream, int64_t crossover_m = -1);

// Dual path of a serving engine that keeps a dequantized copy of the weight next to the packed one (made once at
// load time with dequantize_repacked; 2 bytes a weight): m <= crossover runs the fused kernel on w, larger m
// plain cuBLAS on `dense` ([n, k] row-major, dtype w.act), so prefill never pays a per-call dequantization
// (n*k*2 bytes written and read again: as much as the whole product up to m ~ 1024 on Llama shapes).
// crossover < 0: default_dense_crossover_m. dense == nullptr or handle == nullptr: always the fused kernel.
cudaError_t gemm_auto_cached(const void* a, const RepackedWeight& w, const void* dense, void* c, int64_t m,
                             const GemmWorkspace& ws, cublasHandle_t handle, cudaStream_t stream,
                             int64_t crossover_m = -1);

// Why the last call on this thread returned an error (empty after a success).
const char* gemm_error_message();

#ifdef RTNQ_SWAP_TRACE
// Diagnostic builds only: every later swapped-operand launch appends per-block timestamps to `buffer` (see
// gemm-swap-kernel.cuh; nullptr stops). bench-gemm --trace reads them.
void set_swap_trace(unsigned long long* buffer);
inline constexpr int kSwapTraceWords = 16;  // per block record (the buffer starts with the record count)
#endif

}  // namespace rtnq::cuda
