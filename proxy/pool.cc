// Pool and PoolPicker.
#include "proxy/pool.h"

#include <algorithm>

namespace proxy {

std::string_view BackendState::StateName() const {
  if (down_for_all.load(std::memory_order_relaxed)) return "down";  // by the tier's verdict
  if (!available.load(std::memory_order_relaxed)) {
    return health.up() ? "ejected" : "down";  // a data race on health is benign: display only
  }
  return draining.load(std::memory_order_relaxed) ? "draining" : "up";
}

Pool::Pool(PoolConfig config, std::vector<std::shared_ptr<BackendState>> backends,
           std::shared_ptr<std::atomic<uint64_t>> generation,
           std::shared_ptr<state::StickyStore> sticky)
    : config_(std::move(config)),
      backends_(std::move(backends)),
      generation_(std::move(generation)),
      sticky_(std::move(sticky)) {}

std::shared_ptr<BackendState> Pool::Find(std::string_view backend_name) const {
  for (const auto& b : backends_) {
    if (b->name() == backend_name) return b;
  }
  return nullptr;
}

bool Pool::IsBackup(const BackendState& b) const {
  auto it =
      std::find_if(backends_.begin(), backends_.end(), [&](auto& s) { return s.get() == &b; });
  return it != backends_.end() && backup(it - backends_.begin());
}

bool Pool::FirstTierUsable() const {
  for (size_t i = 0; i < backends_.size(); ++i) {
    if (!backup(i) && backends_[i]->usable()) return true;
  }
  return false;
}

bool Pool::Takes(const BackendState& b) const {
  auto open = [](const BackendState& s) { return s.usable() && !s.full(); };
  if (!open(b)) return false;
  if (!IsBackup(b)) return true;
  for (size_t i = 0; i < backends_.size(); ++i) {
    if (!backup(i) && open(*backends_[i])) return false;
  }
  return true;
}

PoolPicker::PoolPicker(std::shared_ptr<const Pool> pool) : pool_(std::move(pool)) {
  const PoolConfig& config = pool_->config();
  for (bool backups : {false, true}) {
    Tier tier{.backups = backups};
    for (size_t i = 0; i < pool_->backends().size(); ++i) {
      if (pool_->backup(i) == backups) tier.members.push_back(i);
    }
    if (tier.members.empty()) continue;
    tier.strategy = balancer::MakeStrategy(config.strategy, config.maglev_table_size);
    tier.views.resize(tier.members.size());
    tier.exclude = std::make_unique<bool[]>(tier.members.size());
    tiers_.push_back(std::move(tier));
  }
}

uint32_t PoolPicker::EffectiveWeight(const BackendState& b, const PoolConfig& config,
                                     int64_t now_ns) {
  uint32_t weight = b.weight.load(std::memory_order_relaxed) * 10;
  int64_t since = b.up_since_ns.load(std::memory_order_relaxed);
  // Consistent hashing does not slow-start: changing weights would move keys back and forth.
  if (config.slow_start_s == 0 || since == 0 ||
      config.strategy == balancer::StrategyKind::kSourceHash) {
    return weight;
  }
  int64_t ramp_ns = int64_t{config.slow_start_s} * 1'000'000'000;
  int64_t tenths = std::clamp<int64_t>((now_ns - since) * 10 / ramp_ns + 1, 1, 10);
  return std::max<uint32_t>(1, static_cast<uint32_t>(weight * tenths / 10));
}

std::shared_ptr<BackendState> PoolPicker::Pick(
    std::string_view key, std::span<const std::shared_ptr<BackendState>> tried) {
  // The generation before the states it covers: a change that lands while the views are built
  // bumps it past this one, and the next pick rebuilds what this one built from stale views.
  uint64_t generation = pool_->generation();
  int64_t now_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  for (Tier& tier : tiers_) {
    if (std::shared_ptr<BackendState> b = PickFrom(tier, key, tried, generation, now_ns)) return b;
  }
  return nullptr;
}

std::shared_ptr<BackendState> PoolPicker::PickFrom(
    Tier& tier, std::string_view key, std::span<const std::shared_ptr<BackendState>> tried,
    uint64_t generation, int64_t now_ns) {
  auto backends = pool_->backends();
  const PoolConfig& config = pool_->config();
  bool any_excluded = false;
  for (size_t j = 0; j < tier.members.size(); ++j) {
    const std::shared_ptr<BackendState>& b = backends[tier.members[j]];
    tier.views[j] = {b->name(), EffectiveWeight(*b, config, now_ns), b->usable(),
                     static_cast<uint64_t>(std::max<int64_t>(0, b->load()))};
    // A full backend is skipped as one already tried is: a source hash then falls to the key's
    // next choice, as it does for a failed connect.
    tier.exclude[j] = b->full() || std::find(tried.begin(), tried.end(), b) != tried.end();
    any_excluded |= tier.exclude[j];
  }
  std::span<const bool> exclude;
  if (any_excluded) exclude = std::span<const bool>(tier.exclude.get(), tier.members.size());
  // A retry takes no turn: the rotation moves once per connection, not per attempt.
  bool retry = !tried.empty();
  uint64_t turn = retry ? pool_->turn(tier.backups) : pool_->NextTurn(tier.backups);
  std::optional<size_t> pick =
      tier.strategy->Pick({tier.views, generation, turn, retry}, key, exclude);
  return pick ? backends[tier.members[*pick]] : nullptr;
}

}  // namespace proxy
