// Smooth weighted round-robin, nginx's algorithm (ngx_http_upstream_round_robin.c, 2012).
//
// Each step adds every eligible backend's weight to its current value, chooses the largest
// current value and subtracts the total weight from it. Backends are chosen in proportion to
// their weights and interleaved as evenly as possible: weights {a: 5, b: 1, c: 1} give
// a a b a c a a, not a a a a a b c.
//
// One rotation per pool, whichever thread picks: a first pick is the step of the pool's turn
// (PoolView::turn, shared by the proxy's threads), not of this instance's own count. From zero
// the steps repeat with a period of the total weight, so what a turn chooses depends only on the
// weights and the turn, and each instance keeps its state at the last turn it saw and catches up
// by (turn - last) modulo that period: one step per turn taken by another thread since, at most
// one period (a thread that picks rarely, or the first pick after the weights changed). Weights
// are reduced by their greatest common divisor first (the sequence is the same, the period
// shorter; usually the sum of the configured weights).
//
// A retry (the backends tried already excluded) takes no turn: it steps a second rotation of
// this instance's own over the backends not tried, so that the connections a failing backend
// would have had are spread over the others by their weights, and the pool's rotation goes on
// as if the failing backend had had its turn. A first pick whose turn falls on an excluded
// (full) backend goes the same way: the turn is taken, the rotation stays the pool's.
#pragma once

#include <vector>

#include "balancer/strategy.h"

namespace balancer {

class WeightedRoundRobin : public Strategy {
 public:
  std::optional<size_t> Pick(const PoolView& pool, std::string_view key,
                             std::span<const bool> exclude) override;

 private:
  // Starts both rotations anew for the pool's eligible weights (when they differ from those
  // cached: a reload, a health verdict, draining, an operator's weight, a tenth of slow start).
  void Reset(const PoolView& pool);

  std::vector<int64_t> given_;          // by backend index: the weight, 0 when not eligible
  std::vector<int64_t> weight_;         // given_ divided by their greatest common divisor
  std::vector<int64_t> current_;        // the pool's rotation
  std::vector<int64_t> retry_current_;  // the retries' rotation
  int64_t total_ = 0;                   // the period: the sum of weight_
  uint64_t next_turn_ = 0;              // the turn current_ stands before
};

}  // namespace balancer
