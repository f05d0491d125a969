// ConnectionRate: GCRA on one atomic.
#include "proxy/connection_rate.h"

#include <algorithm>

namespace proxy {

namespace {
int64_t Interval(uint32_t per_second) {
  return 1'000'000'000 / static_cast<int64_t>(per_second);
}
}  // namespace

int64_t ConnectionRate::Take(int64_t now_ns, uint32_t per_second) {
  const int64_t interval = Interval(per_second);
  const int64_t burst = std::max<int64_t>(1, per_second / 10);
  const int64_t tolerance = (burst - 1) * interval;
  int64_t next = next_.load(std::memory_order_relaxed);
  for (;;) {
    int64_t start = std::max(next, now_ns);
    if (start - now_ns > tolerance) return start - now_ns - tolerance;
    if (next_.compare_exchange_weak(next, start + interval, std::memory_order_relaxed)) return 0;
  }
}

void ConnectionRate::Return(uint32_t per_second) {
  next_.fetch_sub(Interval(per_second), std::memory_order_relaxed);
}

}  // namespace proxy
