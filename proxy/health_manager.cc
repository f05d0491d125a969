// HealthManager: one check loop (a coroutine) per backend with active checks, plus timers for
// the end of ejections and the steps of slow start.
#include "proxy/health_manager.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "health/checker.h"

namespace proxy {

namespace asio = boost::asio;
using health::Clock;

struct HealthManager::Monitor {
  Monitor(asio::io_context& io, std::shared_ptr<const Pool> p, std::shared_ptr<BackendState> b)
      : pool(std::move(p)),
        backend(std::move(b)),
        check_timer(io),
        eject_timer(io),
        ramp_timer(io) {}
  std::shared_ptr<const Pool> pool;  // the newest pool object holding the backend
  std::shared_ptr<BackendState> backend;
  std::unique_ptr<health::Checker> checker;
  asio::steady_timer check_timer;
  asio::steady_timer eject_timer;
  asio::steady_timer ramp_timer;
  bool stopped = false;
  bool inconclusive = false;  // the last check could not be made (this proxy's own trouble)
};

HealthManager::HealthManager(asio::io_context& control, std::string instance, EventHandler on_event)
    : control_(control), instance_(std::move(instance)), on_event_(std::move(on_event)) {}

HealthManager::~HealthManager() {
  Stop();
}

namespace {

// The check loop of one backend: wait (interval with jitter), probe, feed the state machine.
asio::awaitable<void> CheckLoop(
    std::shared_ptr<HealthManager::Monitor> m,
    std::function<void(std::optional<health::Event>, std::string_view)> apply) {
  std::mt19937_64 rng(std::random_device{}());
  while (!m->stopped) {
    // A copy: a reload that keeps the checks replaces m->pool (and frees the old one's config)
    // while this pass waits.
    const health::Policy policy = m->pool->config().health.policy;
    auto base = m->backend->health.NextInterval();
    int64_t spread = base.count() * policy.jitter_percent / 100;
    std::uniform_int_distribution<int64_t> jitter(-spread, spread);
    m->check_timer.expires_after(base + health::Millis(jitter(rng)));
    auto [ec] = co_await m->check_timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || m->stopped) co_return;
    const asio::ip::tcp::endpoint target = m->backend->check_endpoint;
    health::CheckResult r = co_await m->checker->Check(target, policy.timeout);
    if (m->stopped) co_return;
    // A reload moved the checks to another address meanwhile: this answer is the old one's.
    if (m->backend->check_endpoint != target) continue;
    BackendState& b = *m->backend;
    if (r.inconclusive) {
      // Said once per run, not at every interval of every backend while the proxy is short of
      // descriptors or ports.
      if (!std::exchange(m->inconclusive, true)) {
        spdlog::warn(
            "pool {}: could not check {}: {} (again at debug level until a check can be "
            "made)",
            m->pool->name(), b.name(), r.error);
      } else {
        spdlog::debug("pool {}: could not check {}: {}", m->pool->name(), b.name(), r.error);
      }
      continue;
    }
    if (std::exchange(m->inconclusive, false)) {
      spdlog::info("pool {}: checks of {} can be made again", m->pool->name(), b.name());
    }
    b.checks_total.fetch_add(1, std::memory_order_relaxed);
    b.check_latency_us.store(static_cast<uint64_t>(r.latency.count()), std::memory_order_relaxed);
    if (!r.ok) {
      b.checks_failed.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("pool {}: check of {} failed: {}", m->pool->name(), b.name(), r.error);
    }
    apply(b.health.OnCheck(r.ok, Clock::now()), r.error);
  }
}

// Whether two pools check their backends alike; a reload that changes any of this restarts the
// checks of the backends that stay. Not max_ejection_percent, which MayEject reads from the
// newest pool: changing it keeps every backend's health.
bool SameChecks(const PoolConfig& pool_a, const PoolConfig& pool_b) {
  const HealthConfig &a = pool_a.health, &b = pool_b.health;
  const health::Policy &p = a.policy, &q = b.policy;
  return pool_a.proxy_protocol == pool_b.proxy_protocol && a.active == b.active &&
         a.kind == b.kind && a.http_path == b.http_path && a.mqtt_username == b.mqtt_username &&
         a.mqtt_password == b.mqtt_password && p.rise == q.rise && p.fall == q.fall &&
         p.interval == q.interval && p.fast_interval == q.fast_interval && p.timeout == q.timeout &&
         p.jitter_percent == q.jitter_percent && p.passive_failures == q.passive_failures &&
         p.eject_base == q.eject_base && p.eject_max == q.eject_max;
}

// Moves a backend that stays to the checks of its reloaded `pool`. Its state machine holds its
// policy: replace it, carrying the verdict over. A down backend stays down while there are active
// checks to bring it back (without them nothing could); an ejected one is ejected again under the
// new policy, its backoff from the start.
void CarryOverHealth(BackendState& b, const Pool& pool) {
  const HealthConfig& h = pool.config().health;
  Clock::time_point now = Clock::now();
  health::HealthState next(h.policy);
  if (!b.health.up() && h.active) {
    for (uint32_t i = 0; i < h.policy.fall; ++i)
      next.OnCheck(false, now);
  }
  if (b.health.ejected(now)) {
    for (uint32_t i = 0; i < h.policy.passive_failures; ++i)
      next.OnConnectFailure(now);
  }
  b.health = next;
  bool is = b.health.available(now);
  if (b.available.exchange(is) != is) {
    spdlog::info("pool {}: backend {} {} after the reload of its checks", pool.name(), b.name(),
                 is ? "available" : "not available");
    pool.Touch();
  }
}

// Whether ejecting `backend` keeps the share of its tier of `pool` (the backups, or the others)
// out of service (ejected, down by this proxy's checks or by the tier's verdict) within
// max_ejection_percent; one may always go, as in Envoy's outlier detection. Without the cap, a
// network blip could eject the whole pool. Per tier: standbys that are down would otherwise use
// up the first tier's allowance, and a pool with as many backups could lose its whole first tier.
bool MayEject(const Pool& pool, const BackendState& backend, Clock::time_point now) {
  const auto& all = pool.backends();
  const bool backups = pool.IsBackup(backend);
  size_t tier = 0;
  size_t out = 1;  // `backend`, once ejected
  for (size_t i = 0; i < all.size(); ++i) {
    if (pool.backup(i) != backups) continue;
    ++tier;
    const BackendState& b = *all[i];
    if (&b != &backend && (!b.health.available(now) || b.down_for_all.load())) ++out;
  }
  size_t allowed = tier * pool.config().health.max_ejection_percent / 100;
  return out <= std::max<size_t>(allowed, 1);
}

void Halt(HealthManager::Monitor& m) {
  m.stopped = true;
  m.check_timer.cancel();
  m.eject_timer.cancel();
  m.ramp_timer.cancel();
}

}  // namespace

std::shared_ptr<HealthManager::Monitor> HealthManager::StartMonitor(
    const std::shared_ptr<const Pool>& pool, const std::shared_ptr<BackendState>& backend) {
  auto m = std::make_shared<Monitor>(control_, pool, backend);
  const HealthConfig& h = pool->config().health;
  if (h.active) {
    m->checker = health::MakeChecker({.kind = h.kind,
                                      .http_path = h.http_path,
                                      // One per backend: checks of two backends of one
                                      // cluster, or of one broker in two pools, would take
                                      // each other's sessions over.
                                      .mqtt_client_id = fmt::format("sb-health-{}-{}-{}", instance_,
                                                                    pool->name(), backend->name()),
                                      .mqtt_username = h.mqtt_username,
                                      .mqtt_password = h.mqtt_password,
                                      .proxy_protocol = pool->config().proxy_protocol});
    asio::co_spawn(
        control_,
        CheckLoop(m, [this, raw = m.get()](std::optional<health::Event> e,
                                           std::string_view why) { Apply(*raw, e, why); }),
        asio::detached);
  }
  return m;
}

void HealthManager::Watch(const std::map<std::string, std::shared_ptr<const Pool>>& pools) {
  std::map<BackendState*, std::shared_ptr<Monitor>> next;
  std::vector<std::shared_ptr<Monitor>> restarted;
  for (const auto& [name, pool] : pools) {
    for (const std::shared_ptr<BackendState>& b : pool->backends()) {
      auto it = monitors_.find(b.get());
      std::shared_ptr<Monitor> m;
      if (it == monitors_.end()) {
        m = StartMonitor(pool, b);
      } else if (SameChecks(it->second->pool->config(), pool->config())) {
        m = it->second;
        m->pool = pool;
        monitors_.erase(it);
      } else {
        // The checks of a backend that stays changed (type, policy, or active checks added or
        // removed): a new monitor under the new settings; the old one ends with the others below.
        CarryOverHealth(*b, *pool);
        m = StartMonitor(pool, b);
        restarted.push_back(m);
      }
      next.emplace(b.get(), std::move(m));
    }
  }
  for (auto& [backend, m] : monitors_)  // backends no longer configured, or restarted
    Halt(*m);
  monitors_ = std::move(next);
  for (const std::shared_ptr<Monitor>& m : restarted) {
    BackendState& b = *m->backend;
    if (b.health.ejected(Clock::now())) ScheduleEjectionEnd(m);
    if (b.up_since_ns.load() != 0 && m->pool->config().slow_start_s > 0) RampSlowStart(m);
  }
}

void HealthManager::Stop() {
  Watch({});
}

void HealthManager::Apply(Monitor& m, std::optional<health::Event> event, std::string_view why) {
  if (!event) return;
  BackendState& b = *m.backend;
  Clock::time_point now = Clock::now();
  bool was = b.available.load();
  bool is = b.health.available(now);
  b.available.store(is);
  b.transitions.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("pool {}: backend {} {} ({}){}{}", m.pool->name(), b.name(),
               health::EventName(*event), is ? "available" : "not available",
               why.empty() ? "" : ": ", why);
  auto self = monitors_.find(&b);
  if (self == monitors_.end()) return;
  if (*event == health::Event::kEjected) ScheduleEjectionEnd(self->second);
  if (!was && is && m.pool->config().slow_start_s > 0) {
    b.up_since_ns.store(now.time_since_epoch().count());
    RampSlowStart(self->second);
  } else if (!is) {
    b.up_since_ns.store(0);
  }
  m.pool->Touch();
  if (on_event_) on_event_(*m.pool, b, *event);
}

void HealthManager::ScheduleEjectionEnd(const std::shared_ptr<Monitor>& m) {
  m->eject_timer.expires_at(m->backend->health.ejected_until());
  m->eject_timer.async_wait([this, m](const boost::system::error_code& ec) {
    if (ec || m->stopped) return;
    Apply(*m, m->backend->health.Tick(Clock::now()));
  });
}

void HealthManager::RampSlowStart(const std::shared_ptr<Monitor>& m) {
  // Each tenth of the ramp changes the effective weight: tell the strategies.
  auto step = std::chrono::milliseconds(m->pool->config().slow_start_s * 100);
  m->ramp_timer.expires_after(step);
  m->ramp_timer.async_wait([this, m, step](const boost::system::error_code& ec) {
    if (ec || m->stopped) return;
    BackendState& b = *m->backend;
    m->pool->Touch();
    int64_t since = b.up_since_ns.load();
    if (since == 0) return;
    auto elapsed = Clock::now().time_since_epoch().count() - since;
    if (elapsed >= std::chrono::nanoseconds(step * 10).count()) {
      b.up_since_ns.store(0);  // ramp done: full weight
      m->pool->Touch();
      return;
    }
    RampSlowStart(m);
  });
}

void HealthManager::ReportConnectFailure(const std::shared_ptr<BackendState>& backend) {
  asio::post(control_, [this, backend] {
    auto it = monitors_.find(backend.get());
    if (it == monitors_.end()) return;
    Monitor& m = *it->second;
    health::HealthState& h = backend->health;
    Clock::time_point now = Clock::now();
    bool was_held = h.ejection_held();
    bool may_eject = MayEject(*m.pool, *backend, now);
    std::optional<health::Event> event = h.OnConnectFailure(now, may_eject);
    // Set here, after the count: a success reported from another thread meanwhile, if it came
    // first, would otherwise reset a count this failure then starts again, and leave the flag
    // saying there is nothing to reset.
    backend->failure_streak.store(true, std::memory_order_relaxed);
    if (!may_eject && h.ejection_held()) {
      backend->ejections_held.fetch_add(1, std::memory_order_relaxed);
      if (!was_held) {
        spdlog::warn("pool {}: backend {} not ejected: max_ejection_percent {} of the pool is out",
                     m.pool->name(), backend->name(), m.pool->config().health.max_ejection_percent);
      }
    }
    Apply(m, event, "connections to it failed in a row");
  });
}

void HealthManager::ReportConnectSuccess(const std::shared_ptr<BackendState>& backend) {
  // Only a failure count in progress needs resetting; the common case costs one atomic load.
  if (!backend->failure_streak.load(std::memory_order_relaxed) ||
      !backend->failure_streak.exchange(false)) {
    return;
  }
  asio::post(control_, [backend] { backend->health.OnConnectSuccess(); });
}

}  // namespace proxy
