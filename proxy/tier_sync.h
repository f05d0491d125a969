// Keeps this proxy in step with the rest of the tier through the shared TierState (state/),
// on the control thread.
//
// Every 100 ms it reports this proxy's connections and its checks' verdict per backend (its passive
// ejections stay its own), and applies the view of the other live proxies that comes back: their
// connection counts (added to this proxy's own by least-connections), the tier's health verdict (a
// backend down for all under the configured policy is not chosen, whatever this proxy's checks
// say), and operator changes made through any proxy (drain, weight). Operator changes made here are
// applied at once and shared. When Redis is unreachable the tier state does nothing and the last
// view stays in force for kStaleView; after that this proxy goes by its own counts and verdicts
// (and the operator changes it last saw) until Redis returns.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <string>

#include "proxy/pool.h"
#include "state/tier_state.h"

namespace proxy {

class TierSync {
 public:
  TierSync(boost::asio::io_context& control, std::unique_ptr<state::TierState> tier,
           state::HealthPolicy policy);

  void Start();
  void Stop();
  // The pools after a (re)load; on the control thread.
  void SetPools(std::map<std::string, std::shared_ptr<const Pool>> pools) {
    pools_ = std::move(pools);
  }
  // An operator change made through this proxy's admin API, already applied to `backend`.
  void OperatorChanged(const Pool& pool, const BackendState& backend);

  bool degraded() const { return tier_->degraded(); }
  bool instance_shared() const { return tier_->instance_shared(); }
  uint32_t live_proxies() const { return live_proxies_; }

  static std::string Key(const Pool& pool, const BackendState& b) {
    return pool.name() + "/" + b.name();
  }

 private:
  void Tick();
  void Apply(const state::TierView& view);

  boost::asio::steady_timer timer_;
  std::unique_ptr<state::TierState> tier_;
  state::HealthPolicy policy_;
  std::map<std::string, std::shared_ptr<const Pool>> pools_;
  uint32_t live_proxies_ = 1;
  bool was_degraded_ = false;
  // How long the last view stays in force while the shared state is unreachable: the tier's
  // liveness window, after which the other proxies drop this one's report as well.
  static constexpr std::chrono::milliseconds kStaleView{3000};
  health::Clock::time_point degraded_since_;
  bool own_view_only_ = false;  // the stale view has been dropped
  bool stopped_ = false;
};

}  // namespace proxy
