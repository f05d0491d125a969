// Progress: sleeps in one-second steps (the controller thread does nothing else).
#include "bench/loadgen/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <thread>

namespace loadgen {

Progress::Progress(bool quiet, std::function<std::pair<uint64_t, uint64_t>()> counts)
    : quiet_(quiet), tty_(isatty(STDERR_FILENO)), counts_(std::move(counts)) {}

Progress::~Progress() {
  if (!quiet_ && tty_) fmt::print(stderr, "\n");
}

void Progress::Phase(std::string_view phase, std::chrono::duration<double> length) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now();
  Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(length);
  auto [sent, received] = counts_();
  Clock::time_point last = start;
  while (Clock::now() < end) {
    std::this_thread::sleep_until(std::min(end, last + std::chrono::seconds(1)));
    Clock::time_point now = Clock::now();
    auto [s, r] = counts_();
    double dt = std::chrono::duration<double>(now - last).count();
    if (!quiet_ && dt > 0) {
      fmt::print(stderr, "{}{:>8} {:6.1f}s  sent {:>9.0f}/s  received {:>9.0f}/s{}",
                 tty_ ? "\r" : "", phase, std::chrono::duration<double>(now - start).count(),
                 static_cast<double>(s - sent) / dt, static_cast<double>(r - received) / dt,
                 tty_ ? "   " : "\n");
    }
    sent = s;
    received = r;
    last = now;
  }
}

}  // namespace loadgen
