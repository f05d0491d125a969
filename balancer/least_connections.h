// Weighted least-connections: the backend with the fewest active connections per unit of weight,
// counting the new one: the smallest (active + 1) / weight, as HAProxy's leastconn and Envoy's
// least-request do. Ties, common when a pool is idle, are broken round robin so that a burst of
// new connections does not land on the first backend of the list: the search starts at the
// backend whose turn it is among those that may be chosen (PoolView::turn, shared by the proxy's
// threads).
#pragma once

#include "balancer/strategy.h"

namespace balancer {

class LeastConnections : public Strategy {
 public:
  std::optional<size_t> Pick(const PoolView& pool, std::string_view key,
                             std::span<const bool> exclude) override;
};

}  // namespace balancer
