#include "cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <string_view>

#include "core/check.h"

namespace rtnq::cpu {
namespace {

bool host_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

// 0 = not decided yet, else 1 + Isa.
std::atomic<uint8_t> g_isa{0};

Isa detect() {
  if (const char* env = std::getenv("RTNQ_CPU_ISA")) {
    const std::string_view v(env);
    if (v == "baseline" || v == "avx2") return Isa::kBaseline;
  }
  return isa_supported(Isa::kAvx512) ? Isa::kAvx512 : Isa::kBaseline;
}

}  // namespace

bool isa_supported(Isa isa) {
  static const bool avx512 = host_has_avx512();
  return isa == Isa::kBaseline || (isa == Isa::kAvx512 && avx512);
}

Isa active_isa() {
  uint8_t v = g_isa.load(std::memory_order_relaxed);
  if (v == 0) {
    v = uint8_t(1 + uint8_t(detect()));
    g_isa.store(v, std::memory_order_relaxed);
  }
  return Isa(v - 1);
}

void force_isa(Isa isa) {
  RTNQ_CHECK(isa_supported(isa), "instruction set {} is not supported on this host", isa_name(isa));
  g_isa.store(uint8_t(1 + uint8_t(isa)), std::memory_order_relaxed);
}

const char* isa_name(Isa isa) { return isa == Isa::kAvx512 ? "avx512" : "baseline"; }

}  // namespace rtnq::cpu
