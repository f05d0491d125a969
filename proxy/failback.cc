// Failback: the first tier back, the backups' clients go.
#include "proxy/failback.h"

#include <algorithm>

namespace proxy {

namespace {
constexpr auto kLookEvery = std::chrono::milliseconds(100);
}

Failback::Failback(boost::asio::io_context& control, Release release)
    : timer_(control), release_(std::move(release)) {}

void Failback::Watch(const std::map<std::string, std::shared_ptr<const Pool>>& pools) {
  std::erase_if(open_, [&](const auto& entry) { return !pools.contains(entry.first); });
  pools_ = pools;
  // Looks only while a pool asks for failback; what they were like before does not count.
  bool wanted = std::any_of(pools.begin(), pools.end(), [](const auto& entry) {
    return entry.second->config().on_up == OnUp::kShutdownBackupSessions;
  });
  if (wanted && !looking_) {
    looking_ = true;
    Schedule();
  } else if (!wanted && looking_) {
    looking_ = false;
    open_.clear();
    timer_.cancel();
  }
}

void Failback::Stop() {
  stopped_ = true;
  timer_.cancel();
}

void Failback::Schedule() {
  if (stopped_ || !looking_) return;
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
      BackendState& b = *pool->backends()[i];
      if (pool->backup(i) && b.active.load(std::memory_order_relaxed) > 0) release_(*pool, b);
    }
  }
}

}  // namespace proxy
