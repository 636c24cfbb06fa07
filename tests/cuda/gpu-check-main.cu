// Dependency-free driver of the GPU GEMM checks (gemm-checks.h) for the GPU machine, which has no GoogleTest:
// scripts/gpu-check.sh builds it with nvcc alone. Prints one line per check; exit status 1 if any failed.
//   gpu-check [--max-m M] [--max-nk NK] [--only SUBSTR] [--from N]
// The filters pick a reduced set (compute-sanitizer runs slow every kernel down a hundredfold): cases with
// m <= M, n*k <= NK and a label containing SUBSTR. Repack checks follow the same n*k filter. --from N resumes a run
// cut short: it skips the repack checks and the first N GEMM cases the filters pass.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gemm-checks.h"

int main(int argc, char** argv) {
  using namespace rtnq::cuda::checks;
  int64_t max_m = INT64_MAX, max_nk = INT64_MAX, from = 0;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--max-m") == 0 && has_value) max_m = std::atoll(argv[++i]);
    else if (std::strcmp(argv[i], "--max-nk") == 0 && has_value) max_nk = std::atoll(argv[++i]);
    else if (std::strcmp(argv[i], "--only") == 0 && has_value) only = argv[++i];
    else if (std::strcmp(argv[i], "--from") == 0 && has_value) from = std::atoll(argv[++i]);
    else {
      std::printf("FAIL: unknown argument %s (want --max-m M, --max-nk NK, --only SUBSTR, --from N)\n", argv[i]);
      return 2;
    }
  }
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
  for (const RepackCase& c : repack_cases()) {
    if (c.n * c.k > max_nk || from > 0) continue;
    for (auto act : {rtnq::DType::kF16, rtnq::DType::kBF16}) {
      const auto t0 = now();
      const CheckResult r = check_repack(ctx, c.n, c.k, c.bits, c.group, act);
      report(r, std::chrono::duration<double>(now() - t0).count());
    }
  }
  for (const GemmCase& g : gemm_cases()) {
    if (g.m > max_m || g.n * g.k > max_nk) continue;
    if (!only.empty() && case_label(g).find(only) == std::string::npos) continue;
    if (from > 0) {
      --from;
      continue;
    }
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
