// Weighted least-connections; fractions compared by cross-multiplying, without floating point.
#include "balancer/least_connections.h"

namespace balancer {

std::optional<size_t> LeastConnections::Pick(const PoolView& pool, std::string_view,
                                             std::span<const bool> exclude) {
  size_t n = pool.backends.size();
  std::optional<size_t> best;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (pool.turn + k) % n;
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
