// What the proxies of a tier share besides the sticky table: how many connections each has to
// each backend, what each thinks of each backend's health, and what operators changed (drain,
// weight). Backends are named "pool/backend".
//
// The proxy reports its own state every 100 ms (Report) and receives the merged state of the
// other live proxies back (on_view): the sum of their connection counts per backend, how many of
// them see the backend down, and the operator changes, which outlive proxy restarts. Operator
// changes made through this proxy's admin API are shared with SetOperator.
//
// Implementations: in-process (local_tier_state.h: a proxy alone) and Redis (redis_tier_state.h).
// Both run on the proxy's control thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace state {

struct LocalReport {
  std::string backend;  // "pool/backend"
  int64_t active = 0;   // this proxy's connections to it
  bool up = true;       // this proxy's own checks' verdict (not its passive ejections)
};

struct OperatorState {
  bool draining = false;
  std::optional<uint32_t> weight;  // none: the configured weight
  bool operator==(const OperatorState&) const = default;
};

struct TierView {
  struct Backend {
    int64_t remote_active = 0;  // summed over the other live proxies
    uint32_t down_votes = 0;    // other live proxies that see it down
  };
  absl::flat_hash_map<std::string, Backend> backends;
  uint32_t live_proxies = 1;  // this one included
  absl::flat_hash_map<std::string, OperatorState> operators;
};

class TierState {
 public:
  virtual ~TierState() = default;
  virtual void Report(std::vector<LocalReport> reports) = 0;
  virtual void SetOperator(const std::string& backend, const OperatorState& state) = 0;
  // Redis is configured but unreachable: the proxy runs on its last view.
  virtual bool degraded() const = 0;
  // Another live proxy writes under this one's instance name (name_claim.h).
  virtual bool instance_shared() const = 0;

  std::function<void(const TierView&)> on_view;
};

// Whether a backend is down for the whole tier given the votes of the other proxies and this
// proxy's own: "any" (one proxy seeing it down is enough) or "majority" (more than half of the
// live proxies).
enum class HealthPolicy { kAny, kMajority };
bool DownForAll(HealthPolicy policy, uint32_t other_down_votes, bool down_here,
                uint32_t live_proxies);

}  // namespace state
