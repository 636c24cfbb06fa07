#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace rtnq {

std::string format_bytes(uint64_t b) {
  const double v = double(b);
  if (v >= 1e9) return fmt::format("{:.2f} GB", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f} MB", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f} kB", v / 1e3);
  return fmt::format("{} B", b);
}

std::string format_seconds(double s) {
  if (s < 60) return fmt::format("{:.1f}s", s);
  const int total = int(s + 0.5);
  if (total < 3600) return fmt::format("{}m{:02d}s", total / 60, total % 60);
  return fmt::format("{}h{:02d}m", total / 3600, (total % 3600) / 60);
}

Progress::Progress(std::string label, int64_t total_items, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_items_(total_items), total_bytes_(total_bytes), enabled_(enabled),
      tty_(::isatty(2) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t items, uint64_t bytes, const std::string& current) {
  std::lock_guard<std::mutex> lock(mu_);
  done_items_ += items;
  done_bytes_ += bytes;
  if (!current.empty()) current_ = current;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ > std::chrono::milliseconds(100) || done_items_ == total_items_) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final_line) {
  if (!enabled_) return;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_bytes_ ? double(done_bytes_) / double(total_bytes_)
                                   : (total_items_ ? double(done_items_) / double(total_items_) : 1.0);
  const double gbps = secs > 0 ? double(done_bytes_) / secs / 1e9 : 0.0;
  const double eta = frac > 0 ? secs * (1 - frac) / frac : 0.0;
  constexpr int kWidth = 28;
  const int filled = int(frac * kWidth + 0.5);
  std::string bar(size_t(filled), '#');
  bar.resize(kWidth, '.');
  std::string line = fmt::format("{} [{}] {}/{} tensors  {:.2f} GB/s  {} {}", label_, bar, done_items_,
                                 total_items_, gbps, final_line ? "in" : "ETA",
                                 format_seconds(final_line ? secs : eta));
  if (tty_) {
    std::string cur = final_line ? std::string() : current_;
    if (cur.size() > 40) cur = "…" + cur.substr(cur.size() - 39);
    std::fprintf(stderr, "\r\033[K%s  %s%s", line.c_str(), cur.c_str(), final_line ? "\n" : "");
  } else {
    // Not a terminal: one line per 10% so logs stay short.
    // The 100% line is left to finish(), which prints the total time.
    const int pct = int(frac * 100);
    if (final_line || (pct < 100 && pct / 10 > last_logged_percent_ / 10)) {
      last_logged_percent_ = pct;
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }
  std::fflush(stderr);
}

}  // namespace rtnq
