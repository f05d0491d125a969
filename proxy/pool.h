// A pool at run time: its configuration, its backends' shared state, its sticky table and its
// generation, and the per-thread picker that asks the strategy.
//
// Pool objects are immutable and shared by all threads; a reload builds new ones (reusing the
// BackendState of backends that stay) and hands each thread its new set by posting. The
// generation counter is shared across reloads and bumped whenever something the strategies
// derive state from changes (eligibility, weights, slow-start steps).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "balancer/strategy.h"
#include "proxy/backend_state.h"
#include "proxy/config.h"
#include "state/sticky_store.h"

namespace proxy {

class Pool {
 public:
  Pool(PoolConfig config, std::vector<std::shared_ptr<BackendState>> backends,
       std::shared_ptr<std::atomic<uint64_t>> generation,
       std::shared_ptr<state::StickyStore> sticky);

  const PoolConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  std::span<const std::shared_ptr<BackendState>> backends() const { return backends_; }
  std::shared_ptr<BackendState> Find(std::string_view backend_name) const;
  state::StickyStore* sticky() const { return sticky_.get(); }
  const std::shared_ptr<state::StickyStore>& shared_sticky() const { return sticky_; }
  uint64_t generation() const { return generation_->load(std::memory_order_acquire); }
  void Touch() const { generation_->fetch_add(1, std::memory_order_acq_rel); }
  // The next pick's turn in the pool's rotation (balancer::PoolView::turn), for every thread.
  uint64_t NextTurn() const { return turns_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t turn() const { return turns_.load(std::memory_order_relaxed); }

 private:
  PoolConfig config_;
  std::vector<std::shared_ptr<BackendState>> backends_;
  std::shared_ptr<std::atomic<uint64_t>> generation_;
  std::shared_ptr<state::StickyStore> sticky_;
  mutable std::atomic<uint64_t> turns_{0};
};

// One thread's way to choose from a pool: its own strategy instance and scratch space.
class PoolPicker {
 public:
  explicit PoolPicker(std::shared_ptr<const Pool> pool);

  const Pool& pool() const { return *pool_; }
  const std::shared_ptr<const Pool>& shared_pool() const { return pool_; }
  // A usable backend not in `tried`, or null. `key`: the hash key (client id or source address).
  std::shared_ptr<BackendState> Pick(std::string_view key,
                                     std::span<const std::shared_ptr<BackendState>> tried);

  // The weight the strategy sees: the configured or operator weight, scaled by ten so that slow
  // start can ramp in tenths (MQTT 5.0 has nothing to say here; HAProxy's slowstart does the same).
  static uint32_t EffectiveWeight(const BackendState& b, const PoolConfig& config, int64_t now_ns);

 private:
  std::shared_ptr<const Pool> pool_;
  std::unique_ptr<balancer::Strategy> strategy_;
  std::vector<balancer::BackendView> views_;
  std::unique_ptr<bool[]> exclude_;  // one per backend (std::vector<bool> has no bool*)
};

}  // namespace proxy
