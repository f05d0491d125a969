// Failback: the first tier back, the backups' clients go.
#include "proxy/failback.h"

namespace proxy {

namespace {
constexpr auto kLookEvery = std::chrono::milliseconds(100);
}

Failback::Failback(boost::asio::io_context& control, Release release)
    : timer_(control), release_(std::move(release)) {}

void Failback::Watch(const std::map<std::string, std::shared_ptr<const Pool>>& pools) {
  std::erase_if(open_, [&](const auto& entry) { return !pools.contains(entry.first); });
  bool first = pools_.empty();
  pools_ = pools;
  if (first) Schedule();
}

void Failback::Stop() {
  stopped_ = true;
  timer_.cancel();
}

void Failback::Schedule() {
  if (stopped_) return;
  timer_.expires_after(kLookEvery);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    Look();
    Schedule();
  });
}

void Failback::Look() {
  for (const auto& [name, pool] : pools_) {
    bool open = pool->FirstTierUsable();
    auto [it, added] = open_.try_emplace(name, open);  // a new pool: its state, no failback
    bool reopened = !added && !it->second && open;
    it->second = open;
    if (!reopened || pool->config().on_up != OnUp::kShutdownBackupSessions) continue;
    for (size_t i = 0; i < pool->backends().size(); ++i) {
      const BackendState& b = *pool->backends()[i];
      if (pool->backup(i) && b.active.load(std::memory_order_relaxed) > 0) release_(*pool, b);
    }
  }
}

}  // namespace proxy
