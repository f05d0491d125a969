// Smooth weighted round-robin.
#include "balancer/weighted_round_robin.h"

#include <numeric>

namespace balancer {

namespace {

int64_t EligibleWeight(const BackendView& b) {
  return b.eligible ? b.weight : 0;
}

// One step of a smooth rotation over the backends `in` admits: the one it chooses, if any.
template <typename In>
std::optional<size_t> Step(std::vector<int64_t>& current, const std::vector<int64_t>& weight,
                           In in) {
  int64_t total = 0;
  std::optional<size_t> best;
  for (size_t i = 0; i < weight.size(); ++i) {
    if (weight[i] == 0 || !in(i)) continue;
    current[i] += weight[i];
    total += weight[i];
    if (!best || current[i] > current[*best]) best = i;
  }
  if (best) current[*best] -= total;
  return best;
}

}  // namespace

void WeightedRoundRobin::Reset(const PoolView& pool) {
  int64_t divisor = 0;
  for (const BackendView& b : pool.backends)
    divisor = std::gcd(divisor, EligibleWeight(b));
  given_.clear();
  weight_.clear();
  total_ = 0;
  for (const BackendView& b : pool.backends) {
    given_.push_back(EligibleWeight(b));
    weight_.push_back(divisor ? given_.back() / divisor : 0);
    total_ += weight_.back();
  }
  current_.assign(pool.backends.size(), 0);
  retry_current_.assign(pool.backends.size(), 0);
  // The state at zero stands before every turn that is a multiple of the period.
  next_turn_ = total_ ? pool.turn - pool.turn % total_ : pool.turn;
}

std::optional<size_t> WeightedRoundRobin::Pick(const PoolView& pool, std::string_view,
                                               std::span<const bool> exclude) {
  // Not the generation: it also changes when the weights do not (which leaves every turn's
  // choice as it was), and each thread reads slow start's weights from its own clock.
  bool changed = given_.size() != pool.backends.size();
  for (size_t i = 0; !changed && i < pool.backends.size(); ++i)
    changed = given_[i] != EligibleWeight(pool.backends[i]);
  if (changed) Reset(pool);
  auto admitted = [&](size_t i) { return exclude.empty() || !exclude[i]; };
  if (!pool.retry) {
    auto all = [](size_t) { return true; };
    if (pool.turn >= next_turn_ && total_ > 0) {
      for (uint64_t k = (pool.turn - next_turn_) % static_cast<uint64_t>(total_); k > 0; --k)
        Step(current_, weight_, all);
    }
    next_turn_ = pool.turn + 1;
    std::optional<size_t> turn = Step(current_, weight_, all);
    if (!turn || admitted(*turn)) return turn;
  }
  return Step(retry_current_, weight_, admitted);
}

}  // namespace balancer
