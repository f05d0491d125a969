// Weighted least-connections; fractions compared by cross-multiplying, without floating point.
#include "balancer/least_connections.h"

namespace balancer {

std::optional<size_t> LeastConnections::Pick(const PoolView& pool, std::string_view,
                                             std::span<const bool> exclude) {
  size_t n = pool.backends.size();
  // The search starts at the turn-th of the backends that may be chosen, not at the turn-th of
  // all: otherwise a backend that is down would hand its share of ties to its successor.
  size_t choosable = 0;
  for (size_t i = 0; i < n; ++i)
    choosable += Choosable(pool, exclude, i);
  if (choosable == 0) return std::nullopt;
  size_t start = 0;
  for (size_t seen = 0, want = pool.turn % choosable;; ++start) {
    if (Choosable(pool, exclude, start) && seen++ == want) break;
  }
  std::optional<size_t> best;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (start + k) % n;
    if (!Choosable(pool, exclude, i)) continue;
    if (!best) {
      best = i;
      continue;
    }
    const BackendView& a = pool.backends[i];
    const BackendView& b = pool.backends[*best];
    // (a.active + 1) / a.weight < (b.active + 1) / b.weight; a tie keeps the earlier in the
    // rotation, which starts at the pool's turn.
    if ((a.active + 1) * b.weight < (b.active + 1) * a.weight) best = i;
  }
  return best;
}

}  // namespace balancer
