// The tier state of a proxy alone: no other proxies, operator changes kept in memory.
#pragma once

#include "state/tier_state.h"

namespace state {

class LocalTierState : public TierState {
 public:
  void Report(std::vector<LocalReport> reports) override;
  void SetOperator(const std::string& backend, const OperatorState& state) override;
  bool degraded() const override { return false; }
  bool instance_shared() const override { return false; }

 private:
  TierView view_;
};

}  // namespace state
