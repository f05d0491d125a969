// A pool of backend views for strategy tests: names "b0".."bN", weights and eligibility editable,
// the generation bumped by every edit and the turn by every view, as the proxy does.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "balancer/strategy.h"

namespace balancer {

class TestPool {
 public:
  explicit TestPool(std::vector<uint32_t> weights) {
    for (size_t i = 0; i < weights.size(); ++i)
      names_.push_back("b" + std::to_string(i));
    views_.resize(weights.size());
    for (size_t i = 0; i < weights.size(); ++i)
      views_[i] = {names_[i], weights[i], true, 0};
  }
  // The view for one pick: each takes the pool's next turn.
  PoolView view() { return {views_, generation_, turn_++}; }
  BackendView& operator[](size_t i) {
    ++generation_;
    return views_[i];
  }
  size_t size() const { return views_.size(); }

  // Picks `n` times with distinct keys and counts picks per backend.
  std::map<size_t, int> Spread(Strategy& s, int n, std::string_view key_prefix = "client-") {
    std::map<size_t, int> counts;
    for (int i = 0; i < n; ++i) {
      std::string key = std::string(key_prefix) + std::to_string(i);
      if (auto pick = s.Pick(view(), key, {})) ++counts[*pick];
    }
    return counts;
  }

 private:
  std::vector<std::string> names_;
  std::vector<BackendView> views_;
  uint64_t generation_ = 1;
  uint64_t turn_ = 0;
};

}  // namespace balancer
