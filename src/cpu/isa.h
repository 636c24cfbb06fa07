// Which instruction set the one-token CPU kernels use. The build targets AVX2 (the CI machine may not
// have more); AVX-512 kernels are compiled per function and chosen at run time when the host has
// them. Every kernel family keeps its AVX2 version, and tests run each supported set in turn.
#pragma once

#include <cstdint>

namespace rtnq::cpu {

enum class Isa : uint8_t {
  kBaseline,  // the build's own kernels: AVX2+FMA+F16C on x86-64, plain C++ elsewhere
  kAvx512,    // AVX-512 F/BW/VL/DQ one-token kernels (src/cpu/kernels-avx512.cpp)
};

// Whether this host (and build) can run `isa`.
bool isa_supported(Isa isa);

// The set in use: the best supported one, unless the environment variable RTNQ_CPU_ISA=baseline
// (or avx2) asks for the baseline, or force_isa() chose one. Read once, then cached.
Isa active_isa();

// Tests and benchmarks: use `isa` from now on (must be supported). Not for use while other threads
// run kernels.
void force_isa(Isa isa);

const char* isa_name(Isa isa);

}  // namespace rtnq::cpu
