// Power, energy and SM clock of the benchmark's card, read through NVML while a soak runs (bench-gemm --soak).
//
// Why: from ~64 tokens the GEMMs draw the card to its power cap, and then time follows energy per product, not the
// count of busy SMs (docs/perf-notes.md, eighteenth and twentieth sessions). Energy per call and the clock the
// card held say whether a kernel is at that limit, and what a faster kernel would have to save.
//
// NVML is opened at run time (dlopen of the driver's libnvidia-ml.so.1), so the benchmark builds and links where no
// driver is installed (CI); the few entry points used are declared here with NVML's C signatures.
#pragma once

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace rtnq::bench {

class CardPower {
 public:
  // Opens NVML for CUDA device `device`; ok() is false (and every reading empty) where NVML is missing.
  explicit CardPower(int device) {
    lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib_ == nullptr) return;
    auto sym = [&](const char* name) { return dlsym(lib_, name); };
    auto init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
    auto by_bus = reinterpret_cast<int (*)(const char*, void**)>(sym("nvmlDeviceGetHandleByPciBusId_v2"));
    clock_ = reinterpret_cast<int (*)(void*, int, unsigned*)>(sym("nvmlDeviceGetClockInfo"));
    energy_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetTotalEnergyConsumption"));
    reasons_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetCurrentClocksEventReasons"));
    if (reasons_ == nullptr)  // (the older name of the same call)
      reasons_ =
          reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetCurrentClocksThrottleReasons"));
    limit_ = reinterpret_cast<int (*)(void*, unsigned*)>(sym("nvmlDeviceGetEnforcedPowerLimit"));
    char bus[32] = {};
    if (init == nullptr || by_bus == nullptr || clock_ == nullptr || energy_ == nullptr || init() != 0 ||
        cudaDeviceGetPCIBusId(bus, sizeof bus, device) != cudaSuccess || by_bus(bus, &dev_) != 0)
      dev_ = nullptr;
  }
  ~CardPower() {
    if (lib_ != nullptr) dlclose(lib_);
  }
  CardPower(const CardPower&) = delete;
  CardPower& operator=(const CardPower&) = delete;

  bool ok() const { return dev_ != nullptr; }
  // The enforced power limit in watts (0: unknown).
  double limit_w() const {
    unsigned mw = 0;
    return ok() && limit_ != nullptr && limit_(dev_, &mw) == 0 ? mw / 1000.0 : 0.0;
  }

  // What a stretch of work drew: energy (J) and seconds between begin() and end(), the SM clock sampled every ~10
  // ms meanwhile (median and lowest, MHz), and every clock-event reason seen (NVML's bit mask: 0x4 the software
  // power cap, 0x8 hardware slowdown, 0x20 / 0x40 thermal).
  struct Reading {
    double joules = 0, seconds = 0;
    unsigned sm_mhz_median = 0, sm_mhz_min = 0;
    unsigned long long reasons = 0;
    double watts() const { return seconds > 0 ? joules / seconds : 0; }
  };
  void begin() {
    stop_ = false;
    samples_.clear();
    reasons_seen_ = 0;
    e0_ = energy_mj();
    t0_ = std::chrono::steady_clock::now();
    if (ok()) sampler_ = std::thread([this] { sample(); });
  }
  Reading end() {
    Reading r;
    const unsigned long long e1 = energy_mj();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    stop_ = true;
    if (sampler_.joinable()) sampler_.join();
    if (!ok()) return r;
    r.joules = double(e1 - e0_) / 1000.0;
    std::vector<unsigned> s = samples_;
    if (!s.empty()) {
      std::sort(s.begin(), s.end());
      r.sm_mhz_median = s[s.size() / 2];
      r.sm_mhz_min = s.front();
    }
    r.reasons = reasons_seen_;
    return r;
  }

 private:
  unsigned long long energy_mj() const {
    unsigned long long mj = 0;
    return ok() && energy_(dev_, &mj) == 0 ? mj : 0;
  }
  void sample() {
    constexpr int kSmClock = 1;  // NVML_CLOCK_SM
    while (!stop_) {
      unsigned mhz = 0;
      if (clock_(dev_, kSmClock, &mhz) == 0) samples_.push_back(mhz);
      unsigned long long why = 0;
      if (reasons_ != nullptr && reasons_(dev_, &why) == 0) reasons_seen_ |= why;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void* lib_ = nullptr;
  void* dev_ = nullptr;
  int (*clock_)(void*, int, unsigned*) = nullptr;
  int (*energy_)(void*, unsigned long long*) = nullptr;
  int (*reasons_)(void*, unsigned long long*) = nullptr;
  int (*limit_)(void*, unsigned*) = nullptr;
  std::thread sampler_;
  std::atomic<bool> stop_{false};
  std::vector<unsigned> samples_;  // (written by the sampler only, read after it joined)
  unsigned long long reasons_seen_ = 0;
  unsigned long long e0_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace rtnq::bench
