// Smooth weighted round-robin.
#include "balancer/weighted_round_robin.h"

namespace balancer {

std::optional<size_t> WeightedRoundRobin::Pick(const PoolView& pool, std::string_view,
                                               std::span<const bool> exclude) {
  if (pool.generation != generation_ || current_.size() != pool.backends.size()) {
    current_.assign(pool.backends.size(), 0);  // a changed pool starts a fresh cycle
    generation_ = pool.generation;
  }
  int64_t total = 0;
  std::optional<size_t> best;
  for (size_t i = 0; i < pool.backends.size(); ++i) {
    if (!Choosable(pool, exclude, i)) continue;
    int64_t w = pool.backends[i].weight;
    current_[i] += w;
    total += w;
    if (!best || current_[i] > current_[*best]) best = i;
  }
  if (best) current_[*best] -= total;
  return best;
}

}  // namespace balancer
