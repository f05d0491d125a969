// The strategy factory: the one place that knows every strategy.
#include "balancer/strategy.h"

#include "balancer/least_connections.h"
#include "balancer/source_hash.h"
#include "balancer/weighted_round_robin.h"

namespace balancer {

std::unique_ptr<Strategy> MakeStrategy(StrategyKind kind, uint32_t maglev_table_size) {
  switch (kind) {
    case StrategyKind::kWeightedRoundRobin:
      return std::make_unique<WeightedRoundRobin>();
    case StrategyKind::kLeastConnections:
      return std::make_unique<LeastConnections>();
    case StrategyKind::kSourceHash:
      return std::make_unique<SourceHash>(maglev_table_size);
  }
  return nullptr;
}

}  // namespace balancer
