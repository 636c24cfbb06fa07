// Host-side launch helpers the fused kernels share: shared memory padded to cap the blocks per SM, and the 1-D
// cluster launch attribute.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

namespace rtnq::cuda::detail {

// Dynamic shared memory for a block that needs `need` bytes, padded so that at most `per_sm` blocks fit on an SM
// (0: no padding). A small grid uses it to spread over the SMs: the hardware packs blocks (and a cluster's blocks)
// onto as few SMs as their resources allow (8B o at m = 1 in clusters of 16: 256 blocks on 66-116 of 132 SMs, 4 to
// an SM on many), and a block's stage time grows with the blocks that share its SM (docs/perf-notes.md). The
// padding leaves room for the per-block reservation and the kernel's static shared memory.
inline int padded_smem_bytes(int need, int per_sm) {
  struct SmemLimits {
    int per_sm, reserved, optin;
  };
  static const SmemLimits lim = [] {
    SmemLimits l{0, 0, 0};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      l = SmemLimits{0, 0, 0};
    }
    return l;
  }();
  if (per_sm <= 0 || lim.per_sm <= 0) return need;
  constexpr int kStaticMargin = 256;  // the kernel's static __shared__ variables
  const int padded = (std::min(lim.per_sm / per_sm - lim.reserved, lim.optin) - kStaticMargin) / 128 * 128;
  return std::max(need, padded);
}

// The launch attribute that groups the grid into 1-D clusters of `size` blocks.
inline cudaLaunchAttribute cluster_dim_attr(int size) {
  cudaLaunchAttribute a{};
  a.id = cudaLaunchAttributeClusterDimension;
  a.val.clusterDim.x = unsigned(size);
  a.val.clusterDim.y = a.val.clusterDim.z = 1;
  return a;
}

// Programmatic stream serialization: the kernel may start while the one before it in the stream finishes (it
// waits for that kernel with griddepcontrol.wait before reading anything the kernel before may write).
inline cudaLaunchAttribute pdl_attr() {
  cudaLaunchAttribute a{};
  a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a.val.programmaticStreamSerializationAllowed = 1;
  return a;
}

}  // namespace rtnq::cuda::detail
