// Smooth weighted round-robin, nginx's algorithm (ngx_http_upstream_round_robin.c, 2012).
//
// Each pick adds every eligible backend's weight to its current value, chooses the largest
// current value and subtracts the total weight from it. Backends are chosen in proportion to
// their weights and interleaved as evenly as possible: weights {a: 5, b: 1, c: 1} give
// a a b a c a a, not a a a a a b c.
#pragma once

#include <vector>

#include "balancer/strategy.h"

namespace balancer {

class WeightedRoundRobin : public Strategy {
 public:
  std::optional<size_t> Pick(const PoolView& pool, std::string_view key,
                             std::span<const bool> exclude) override;

 private:
  std::vector<int64_t> current_;  // by backend index
  uint64_t generation_ = UINT64_MAX;
};

}  // namespace balancer
