// wgmma (sm_90a warpgroup MMA) wrappers for the swapped-operand kernel: D[64 x N] += A[64 x 16] * B[16 x N] with A
// in registers (each warp of the warpgroup holds 16 rows, in the mma.sync m16n8k16 A-fragment layout) and B in
// shared memory behind a matrix descriptor, for N = 8, 16, 32, 64, 128 tokens and FP16 / BF16.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace rtnq::cuda::detail {

// Shared-memory matrix descriptor of a K-major tile with the 128-byte swizzle: rows of 64 16-bit elements (128 B),
// 8-row atoms 1024 B apart (the stride byte offset), the leading byte offset unused (1 by convention), the atom
// base 1024-byte aligned (base offset 0). Adding 2 to the result steps 16 elements (32 B) along k.
__device__ __forceinline__ uint64_t wgmma_desc_k128(uint32_t smem_addr) {
  return uint64_t((smem_addr & 0x3FFFFu) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Pins accumulator registers across an asynchronous wgmma (no instruction: the compiler may not move them).
template <int R>
__device__ __forceinline__ void wgmma_pin(float (&d)[R][4]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[i][e]));
}

template <typename T, int N>
struct Wgmma;

// Wgmma<TYPE, N>::run for one activation type (PTX_TYPE its PTX name); OPERANDS names the registers in the
// instruction (N/2 accumulators, 4 A registers, the descriptor); the variadic tail is the accumulator operand list.
// scale-d is the predicate p: set by `accumulate` (D += A B), clear for D = A B (the deferred-scale partial sums
// start each group that way instead of being zeroed); ACC names that operand. A and B are not negated, B is K-major
// (not transposed).
#define RTNQ_WGMMA_RS(TYPE, PTX_TYPE, N, OPERANDS, ACC, ...)                                                      \
  template <>                                                                                                   \
  struct Wgmma<TYPE, N> {                                                                                       \
    static __device__ __forceinline__ void run(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t desc,     \
                                               int accumulate = 1) {                                            \
      asm volatile(                                                                                             \
          "{\n.reg .pred p;\nsetp.ne.b32 p, " ACC ", 0;\n"                                                     \
          "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." PTX_TYPE "." PTX_TYPE " " OPERANDS                 \
          ", p, 1, 1, 0;\n}\n"                                                                                  \
          : __VA_ARGS__                                                                                         \
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate));                            \
    }                                                                                                           \
  };
#define RTNQ_WGMMA_RS_BOTH(N, OPERANDS, ACC, ...)                   \
  RTNQ_WGMMA_RS(half, "f16", N, OPERANDS, ACC, __VA_ARGS__)         \
  RTNQ_WGMMA_RS(__nv_bfloat16, "bf16", N, OPERANDS, ACC, __VA_ARGS__)
// The four accumulators of 8-token tile i.
#define RTNQ_WGMMA_D8(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])

RTNQ_WGMMA_RS_BOTH(8, "{%0,%1,%2,%3}, {%4,%5,%6,%7}, %8", "%9", RTNQ_WGMMA_D8(0))
RTNQ_WGMMA_RS_BOTH(16,
                   "{%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9,%10,%11}, %12", "%13",
                   RTNQ_WGMMA_D8(0), RTNQ_WGMMA_D8(1))
RTNQ_WGMMA_RS_BOTH(32,
                   "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, {%16,%17,%18,%19}, %20", "%21",
                   RTNQ_WGMMA_D8(0), RTNQ_WGMMA_D8(1), RTNQ_WGMMA_D8(2), RTNQ_WGMMA_D8(3))
RTNQ_WGMMA_RS_BOTH(64,
                   "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                   "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36", "%37",
                   RTNQ_WGMMA_D8(0), RTNQ_WGMMA_D8(1), RTNQ_WGMMA_D8(2), RTNQ_WGMMA_D8(3),
                   RTNQ_WGMMA_D8(4), RTNQ_WGMMA_D8(5), RTNQ_WGMMA_D8(6), RTNQ_WGMMA_D8(7))
RTNQ_WGMMA_RS_BOTH(128,
                   "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                   "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
                   "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
                   "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68", "%69",
                   RTNQ_WGMMA_D8(0), RTNQ_WGMMA_D8(1), RTNQ_WGMMA_D8(2), RTNQ_WGMMA_D8(3),
                   RTNQ_WGMMA_D8(4), RTNQ_WGMMA_D8(5), RTNQ_WGMMA_D8(6), RTNQ_WGMMA_D8(7),
                   RTNQ_WGMMA_D8(8), RTNQ_WGMMA_D8(9), RTNQ_WGMMA_D8(10), RTNQ_WGMMA_D8(11),
                   RTNQ_WGMMA_D8(12), RTNQ_WGMMA_D8(13), RTNQ_WGMMA_D8(14), RTNQ_WGMMA_D8(15))

#undef RTNQ_WGMMA_D8
#undef RTNQ_WGMMA_RS_BOTH
#undef RTNQ_WGMMA_RS

}  // namespace rtnq::cuda::detail
