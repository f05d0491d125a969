// A pool at run time: its configuration, its backends' shared state, its sticky table and its
// generation, and the per-thread picker that asks the strategy.
//
// Backends marked `backup` form a second tier, chosen from (by the same strategy, each backup
// with its weight: HAProxy's `option allbackups`) only when no backend of the first can take the
// connection: down, ejected, draining, weight 0, full or already tried. Each tier has a strategy
// instance and a rotation of its own, so backups change nothing in how the first tier spreads
// its clients (a Maglev table over its names alone).
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
  // Whether backends()[i] is a backup.
  bool backup(size_t i) const { return config_.backends[i].backup; }
  // Whether `b`, a backend of this pool, is a backup.
  bool IsBackup(const BackendState& b) const;
  std::shared_ptr<BackendState> Find(std::string_view backend_name) const;
  // Whether `b`, a backend of this pool, may take a new connection now: usable and not full,
  // and, for a backup, only while no backend of the first tier may.
  bool Takes(const BackendState& b) const;
  // Whether a backend that is not a backup is usable (BackendState::usable: up, not ejected, not
  // down for the tier, not draining, with weight).
  bool FirstTierUsable() const;
  state::StickyStore* sticky() const { return sticky_.get(); }
  const std::shared_ptr<state::StickyStore>& shared_sticky() const { return sticky_; }
  uint64_t generation() const { return generation_->load(std::memory_order_acquire); }
  void Touch() const { generation_->fetch_add(1, std::memory_order_acq_rel); }
  // The next pick's turn in a tier's rotation (balancer::PoolView::turn), for every thread.
  uint64_t NextTurn(bool backups) const {
    return turns_[backups].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t turn(bool backups) const { return turns_[backups].load(std::memory_order_relaxed); }

 private:
  PoolConfig config_;
  std::vector<std::shared_ptr<BackendState>> backends_;
  std::shared_ptr<std::atomic<uint64_t>> generation_;
  std::shared_ptr<state::StickyStore> sticky_;
  mutable std::atomic<uint64_t> turns_[2] = {0, 0};  // the first tier's, the backups'
};

// One thread's way to choose from a pool: its own strategy instance and scratch space per tier.
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
  // The first tier, or the backups: the pool's backends it holds, and its strategy's scratch.
  struct Tier {
    bool backups = false;
    std::vector<size_t> members;  // indices into pool.backends()
    std::unique_ptr<balancer::Strategy> strategy;
    std::vector<balancer::BackendView> views;
    std::unique_ptr<bool[]> exclude;  // one per member (std::vector<bool> has no bool*)
  };

  std::shared_ptr<BackendState> PickFrom(Tier& tier, std::string_view key,
                                         std::span<const std::shared_ptr<BackendState>> tried,
                                         uint64_t generation, int64_t now_ns);

  std::shared_ptr<const Pool> pool_;
  std::vector<Tier> tiers_;  // the first tier, then the backups if there are any
};

}  // namespace proxy
