// Dependency-free driver of the GPU GEMM checks (gemm-checks.h) for the GPU machine, which has no GoogleTest:
// scripts/gpu-check.sh builds it with nvcc alone. Prints one line per check; exit status 1 if any failed.
#include <chrono>
#include <cstdio>

#include "gemm-checks.h"

int main() {
  using namespace rtnq::cuda::checks;
  if (!gpu_available()) {
    std::printf("SKIP: no CUDA device\n");
    return 0;
  }
  Context ctx;
  std::string err;
  if (!ctx.init(&err)) {
    std::printf("FAIL: init: %s\n", err.c_str());
    return 1;
  }
  int passed = 0, failed = 0;
  double worst_f16 = 0, worst_bf16 = 0;
  auto report = [&](const CheckResult& r, double secs) {
    (r.ok ? passed : failed)++;
    std::printf("%s %.2fs %s\n", r.ok ? "PASS" : "FAIL", secs, r.detail.c_str());
    std::fflush(stdout);
  };
  auto now = [] { return std::chrono::steady_clock::now(); };
  for (const RepackCase& c : repack_cases())
    for (auto act : {rtnq::DType::kF16, rtnq::DType::kBF16}) {
      const auto t0 = now();
      const CheckResult r = check_repack(ctx, c.n, c.k, c.bits, c.group, act);
      report(r, std::chrono::duration<double>(now() - t0).count());
    }
  for (const GemmCase& g : gemm_cases()) {
    const auto t0 = now();
    double e = 0;
    const CheckResult r = check_gemm(ctx, g, &e);
    (g.act == rtnq::DType::kF16 ? worst_f16 : worst_bf16) =
        std::max(g.act == rtnq::DType::kF16 ? worst_f16 : worst_bf16, e);
    report(r, std::chrono::duration<double>(now() - t0).count());
  }
  report(check_rejections(ctx), 0);
  std::printf("gpu-check: %d passed, %d failed; worst rel. Frobenius error f16 %.3g (tol 2e-3), bf16 %.3g (tol 1e-2)\n",
              passed, failed, worst_f16, worst_bf16);
  return failed == 0 ? 0 : 1;
}
