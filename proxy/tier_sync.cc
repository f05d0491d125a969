// TierSync.
#include "proxy/tier_sync.h"

#include <spdlog/spdlog.h>

namespace proxy {

namespace asio = boost::asio;

TierSync::TierSync(asio::io_context& control, std::unique_ptr<state::TierState> tier,
                   state::HealthPolicy policy)
    : timer_(control), tier_(std::move(tier)), policy_(policy) {
  tier_->on_view = [this](const state::TierView& view) { Apply(view); };
}

void TierSync::Start() {
  Tick();
}

void TierSync::Stop() {
  stopped_ = true;
  timer_.cancel();
}

void TierSync::Tick() {
  if (stopped_) return;
  bool degraded = tier_->degraded();
  auto now = health::Clock::now();
  if (degraded != was_degraded_) {
    if (degraded) {
      spdlog::warn("shared state unreachable or failing: degraded, routing on the last view");
      degraded_since_ = now;
    } else {
      spdlog::info("shared state reachable again: re-publishing and re-syncing");
      own_view_only_ = false;
    }
    was_degraded_ = degraded;
  }
  if (degraded && !own_view_only_ && now - degraded_since_ >= kStaleView) {
    // As the other proxies forget this one after as long: their counts and health verdicts are
    // stale now (a backend they saw down may be back), so this proxy goes by its own alone.
    // Operator changes stay: they are intent, not observation.
    spdlog::warn("shared state unreachable for {} ms: dropping the other proxies' view",
                 kStaleView.count());
    own_view_only_ = true;
    Apply(state::TierView{.live_proxies = 1});
  }
  std::vector<state::LocalReport> reports;
  for (const auto& [name, pool] : pools_) {
    for (const auto& b : pool->backends()) {
      // The checks' verdict, not passive ejections: those are this proxy's own experience of
      // its connects, held to the pool's max_ejection_percent here and not across the tier.
      reports.push_back(
          {Key(*pool, *b), b->active.load(std::memory_order_relaxed), b->health.up()});
    }
  }
  tier_->Report(std::move(reports));
  timer_.expires_after(std::chrono::milliseconds(100));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Tick();
  });
}

void TierSync::Apply(const state::TierView& view) {
  live_proxies_ = view.live_proxies;
  for (const auto& [name, pool] : pools_) {
    bool changed = false;
    for (const auto& b : pool->backends()) {
      std::string key = Key(*pool, *b);
      state::TierView::Backend seen;
      if (auto it = view.backends.find(key); it != view.backends.end()) seen = it->second;
      b->remote_active.store(seen.remote_active, std::memory_order_relaxed);
      bool down = state::DownForAll(policy_, seen.down_votes, !b->health.up(), view.live_proxies) &&
                  seen.down_votes > 0;  // this proxy's own verdict acts through `available`
      if (b->down_for_all.exchange(down) != down) {
        changed = true;
        spdlog::info("pool {}: backend {} {} for the tier ({} of {} proxies see it down)",
                     pool->name(), b->name(), down ? "down" : "up again", seen.down_votes,
                     view.live_proxies);
      }
      auto op = view.operators.find(key);
      if (op == view.operators.end()) {
        // Redis lost the tier's record of a change in force here (restarted without
        // persistence, flushed, evicted): written again, or proxies started since would not
        // know of it. Not from the view of this proxy alone, which has no operators to miss.
        if (!own_view_only_ && (b->draining.load() || b->operator_weight)) {
          OperatorChanged(*pool, *b);
        }
        continue;
      }
      const state::OperatorState& o = op->second;
      if (b->draining.exchange(o.draining) != o.draining) changed = true;
      uint32_t weight = o.weight.value_or(b->file_weight);
      b->operator_weight = o.weight;
      if (b->weight.exchange(weight) != weight) changed = true;
    }
    if (changed) pool->Touch();
  }
}

void TierSync::OperatorChanged(const Pool& pool, const BackendState& backend) {
  tier_->SetOperator(Key(pool, backend),
                     {.draining = backend.draining.load(), .weight = backend.operator_weight});
}

}  // namespace proxy
