// LocalTierState, and the health policy shared by both implementations.
#include "state/local_tier_state.h"

namespace state {

bool DownForAll(HealthPolicy policy, uint32_t other_down_votes, bool down_here,
                uint32_t live_proxies) {
  uint32_t votes = other_down_votes + (down_here ? 1 : 0);
  if (policy == HealthPolicy::kAny) return votes > 0;
  return 2 * votes > live_proxies;
}

void LocalTierState::Report(std::vector<LocalReport>) {
  if (on_view) on_view(view_);
}

void LocalTierState::SetOperator(const std::string& backend, const OperatorState& state) {
  view_.operators[backend] = state;
}

}  // namespace state
