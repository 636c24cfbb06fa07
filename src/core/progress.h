// A one-line progress bar on stderr: items done, throughput, ETA. Redraws at most 10 times a second,
// and prints plain lines instead when stderr is not a terminal (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace rtnq {

class Progress {
 public:
  // `total_bytes` drives GB/s and ETA; `label` prefixes the line.
  Progress(std::string label, int64_t total_items, uint64_t total_bytes, bool enabled = true);
  ~Progress();
  void advance(int64_t items, uint64_t bytes, const std::string& current = {});
  void finish();

 private:
  void draw(bool final_line);
  std::string label_;
  int64_t total_items_, done_items_ = 0;
  uint64_t total_bytes_, done_bytes_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::string current_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_logged_percent_ = -1;
  std::mutex mu_;
};

// Format helpers shared by tables and progress lines.
std::string format_bytes(uint64_t bytes);     // "1.23 GB" (decimal units, as disks and HF do)
std::string format_seconds(double seconds);   // "1m05s"

}  // namespace rtnq
