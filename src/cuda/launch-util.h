// Host-side launch helpers the fused kernels share: shared memory padded to cap the blocks per SM, the launch
// attributes (1-D clusters, programmatic dependent launch), the launch itself and the cluster-occupancy query.
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

// A 1-D launch of `blocks` blocks of `threads` with `smem` bytes of dynamic shared memory, with programmatic stream
// serialization (pdl) and clusters of `cluster` blocks (> 1) as asked: what every fused kernel's launch and
// cluster-occupancy query describe. Not copyable: cfg points into attr.
struct LaunchConfig {
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attr[2];
  LaunchConfig(int blocks, int threads, int smem, cudaStream_t stream, bool pdl, int cluster) {
    cfg.gridDim = dim3(unsigned(blocks), 1, 1);
    cfg.blockDim = dim3(unsigned(threads), 1, 1);
    cfg.dynamicSmemBytes = size_t(smem);
    cfg.stream = stream;
    unsigned n = 0;
    if (pdl) attr[n++] = pdl_attr();
    if (cluster > 1) attr[n++] = cluster_dim_attr(cluster);
    cfg.attrs = attr;
    cfg.numAttrs = n;
  }
  LaunchConfig(const LaunchConfig&) = delete;
  LaunchConfig& operator=(const LaunchConfig&) = delete;
};

// Launches kernel(p) as lc describes; the launch's own error, else the first error it left behind.
template <typename Params>
cudaError_t launch_with(void (*kernel)(Params), const LaunchConfig& lc, const Params& p) {
  const cudaError_t e = cudaLaunchKernelEx(&lc.cfg, kernel, p);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

// How many clusters of `size` blocks of `kernel` (threads, smem bytes of dynamic shared memory each) the card holds
// at once; 0 if none, or the query fails (its error cleared).
template <typename Params>
int max_active_clusters(void (*kernel)(Params), int size, int threads, int smem) {
  const LaunchConfig lc(size, threads, smem, nullptr, false, size);
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, kernel, &lc.cfg) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n > 0 ? n : 0;
}

}  // namespace rtnq::cuda::detail
