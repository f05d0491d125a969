// Proxy lifecycle and reloads.
#include "proxy/proxy.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "base/absl_format.h"
#include "net/http_server.h"
#include "net/io_threads.h"
#include "net/listen.h"
#include "proxy/admin_api.h"
#include "proxy/failback.h"
#include "proxy/health_manager.h"
#include "proxy/tier_sync.h"
#include "proxy/worker.h"
#include "state/local_sticky_store.h"
#include "state/local_tier_state.h"
#include "state/redis_sticky_store.h"
#include "state/redis_tier_state.h"

namespace proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// One pass of lookups: each host resolved once, however many addresses and check addresses of
// the configuration name it (when DNS is down, each lookup costs the resolver's timeout).
class Lookups {
 public:
  // `address`'s endpoints, in the resolver's order.
  absl::StatusOr<std::vector<tcp::endpoint>> All(const base::HostPort& address) {
    auto [it, fresh] = by_host_.try_emplace(address.host);
    if (fresh) it->second = net::ResolveAll({address.host, 0});
    if (!it->second.ok()) return it->second.status();
    std::vector<tcp::endpoint> out;
    for (const tcp::endpoint& e : *it->second)
      out.emplace_back(e.address(), address.port);
    return out;
  }

 private:
  std::map<std::string, absl::StatusOr<std::vector<tcp::endpoint>>> by_host_;
};

// `address`'s endpoint: the first of `preferred` (null ones skipped) that the name still resolves
// to, else the resolver's first.
absl::StatusOr<tcp::endpoint> ResolveKeeping(
    Lookups& lookups, const base::HostPort& address,
    std::initializer_list<const tcp::endpoint*> preferred) {
  absl::StatusOr<std::vector<tcp::endpoint>> all = lookups.All(address);
  if (!all.ok()) return all.status();
  for (const tcp::endpoint* p : preferred) {
    if (p != nullptr && std::find(all->begin(), all->end(), *p) != all->end()) return *p;
  }
  return all->front();
}

absl::StatusOr<ResolvedConfig::Backend> ResolveBackend(Lookups& lookups, const std::string& pool,
                                                       const BackendConfig& b,
                                                       const ResolvedConfig::Backend* current) {
  auto failed = [&](std::string_view key, const absl::Status& s) {
    return absl::InvalidArgumentError(
        fmt::format("pool.{} backend \"{}\": {}: {}", pool, b.name, key, s.message()));
  };
  absl::StatusOr<tcp::endpoint> data =
      ResolveKeeping(lookups, b.address, {current != nullptr ? &current->data : nullptr});
  if (!data.ok()) return failed("address", data.status());
  if (!b.check_address) return ResolvedConfig::Backend{*data, *data};
  // The checks go where the clients go when the check address names the same host (another
  // port of the same broker): with several addresses, each looked up on its own could land on
  // two brokers.
  std::optional<tcp::endpoint> beside;
  if (b.check_address->host == b.address.host) {
    beside = tcp::endpoint(data->address(), b.check_address->port);
  }
  absl::StatusOr<tcp::endpoint> check =
      ResolveKeeping(lookups, *b.check_address,
                     {beside ? &*beside : nullptr, current != nullptr ? &current->check : nullptr});
  if (!check.ok()) return failed("check_address", check.status());
  return ResolvedConfig::Backend{*data, *check};
}

}  // namespace

RefreshedEndpoints ResolveBackends(const ProxyConfig& config, const BackendEndpoints& current) {
  Lookups lookups;
  RefreshedEndpoints out;
  for (const auto& [name, pool] : config.pools) {
    for (const BackendConfig& b : pool.backends) {
      BackendKey key{name, b.name};
      auto kept = current.find(key);
      const ResolvedConfig::Backend* in_force = kept != current.end() ? &kept->second : nullptr;
      absl::StatusOr<ResolvedConfig::Backend> r = ResolveBackend(lookups, name, b, in_force);
      if (r.ok()) {
        out.endpoints[key] = *r;
        continue;
      }
      if (out.first_failure.ok()) out.first_failure = r.status();
      out.failures[key] = std::string(r.status().message());
    }
  }
  return out;
}

absl::StatusOr<ResolvedConfig> ResolveConfig(ProxyConfig config, const BackendEndpoints& current) {
  RefreshedEndpoints backends = ResolveBackends(config, current);
  if (!backends.first_failure.ok()) return backends.first_failure;
  ResolvedConfig out{.backends = std::move(backends.endpoints)};
  for (const ListenerConfig& l : config.listeners) {
    absl::StatusOr<tcp::endpoint> ep = net::Resolve(l.bind);
    if (!ep.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("listener \"{}\": bind: {}", l.name, ep.status().message()));
    }
    out.binds[l.name] = *ep;
  }
  out.config = std::move(config);
  return out;
}

struct Proxy::Signals {
  explicit Signals(asio::io_context& io) : set(io, SIGTERM, SIGINT, SIGHUP) {}
  asio::signal_set set;
};

Proxy::Proxy(std::string config_path, ProxyConfig config)
    : config_path_(std::move(config_path)),
      config_(std::move(config)),
      threads_(std::make_unique<net::IoThreads>(config_.threads, "worker")),
      signals_(std::make_unique<Signals>(threads_->context(0))),
      reloader_(std::make_unique<asio::thread_pool>(1)) {
  for (size_t i = 0; i < threads_->size(); ++i) {
    workers_.push_back(
        std::make_unique<Worker>(*this, i, threads_->context(i), config_.yield_before_sleep));
  }
  // Shared state: Redis when configured (one connection per worker for the sticky table, one
  // for the control thread's tier state), else this process's memory.
  std::unique_ptr<state::TierState> tier;
  if (!config_.redis.url.empty()) {
    state::RedisOptions options = *state::ParseRedisUrl(config_.redis.url);  // checked on load
    options.command_timeout = std::chrono::milliseconds(config_.redis.command_timeout_ms);
    state::RedisKeys keys(config_.redis.prefix);
    std::vector<state::RedisStickyStore::ThreadClient> per_thread;
    for (size_t i = 0; i < workers_.size(); ++i) {
      auto client = state::RedisClient::Create(threads_->context(i), options);
      per_thread.push_back({&threads_->context(i), client});
      redis_clients_.push_back(std::move(client));
    }
    sticky_ = std::make_shared<state::RedisStickyStore>(
        keys, std::move(per_thread), std::chrono::milliseconds(config_.redis.sticky_cache_ms));
    auto control = state::RedisClient::Create(threads_->context(0), options);
    redis_clients_.push_back(control);
    tier = std::make_unique<state::RedisTierState>(control, keys, config_.instance);
  } else {
    sticky_ = std::make_shared<state::LocalStickyStore>();
    tier = std::make_unique<state::LocalTierState>();
  }
  tier_sync_ = std::make_unique<TierSync>(threads_->context(0), std::move(tier),
                                          config_.redis.health_policy == "majority"
                                              ? state::HealthPolicy::kMajority
                                              : state::HealthPolicy::kAny);
  health_ =
      std::make_unique<HealthManager>(threads_->context(0), config_.instance,
                                      [this](const Pool& pool, BackendState& backend,
                                             health::Event e) { OnHealthEvent(pool, backend, e); });
  failback_ = std::make_unique<Failback>(
      threads_->context(0), [this](const Pool& pool, BackendState& backup) {
        ShutdownSessions(pool, backup, SessionEnd::kBackupReleased);
      });
}

Proxy::~Proxy() = default;

absl::Status Proxy::Start() {
  absl::StatusOr<ResolvedConfig> resolved = ResolveConfig(config_);
  if (!resolved.ok()) return resolved.status();
  if (absl::Status s = Apply(std::move(*resolved)); !s.ok()) return s;
  for (auto& client : redis_clients_)
    client->Start();
  asio::post(threads_->context(0), [this] { tier_sync_->Start(); });
  if (shared_state_configured()) {
    spdlog::info("instance {} sharing state through {}", config_.instance,
                 state::RedactRedisUrl(config_.redis.url));
  }
  if (config_.admin) {
    admin_ = std::make_unique<net::HttpServer>(
        threads_->context(0),
        [this](const net::HttpRequest& request) { return HandleAdmin(*this, request); });
    if (absl::Status s = admin_->Listen(*config_.admin); !s.ok()) return s;
  }
  for (const auto& [name, port] : ports_) {
    spdlog::info("listener {} on {}:{}", name, bound_.at(name).bind.host, port);
  }
  if (admin_) spdlog::info("admin on {}:{}", config_.admin->host, admin_->port());
  spdlog::info("{} worker threads", workers_.size());
  address_refresh_ = std::make_unique<asio::steady_timer>(threads_->context(0));
  asio::post(threads_->context(0), [this] { ScheduleAddressRefresh(); });
  return absl::OkStatus();
}

absl::Status Proxy::Apply(ResolvedConfig resolved, std::function<void()> applied) {
  ProxyConfig& next = resolved.config;
  // 1. Pools: keep the state of backends that keep name and address. Nothing live changes
  // before step 3: weights, limits and check addresses changed in the file wait in `new_weights`,
  // `new_limits` and `new_checks`.
  std::map<std::string, std::shared_ptr<const Pool>> pools;
  struct NewWeight {
    std::string pool;
    std::shared_ptr<BackendState> backend;
    uint32_t weight;
  };
  std::vector<NewWeight> new_weights;
  std::vector<std::pair<std::shared_ptr<BackendState>, uint32_t>> new_limits;
  std::vector<std::pair<std::shared_ptr<BackendState>, tcp::endpoint>> new_checks;
  for (const auto& [name, pc] : next.pools) {
    std::vector<std::shared_ptr<BackendState>> backends;
    for (const BackendConfig& bc : pc.backends) {
      const ResolvedConfig::Backend& endpoints = resolved.backends.at({name, bc.name});
      std::shared_ptr<BackendState> state;
      std::shared_ptr<BackendState> moved;  // this backend's state at its previous address
      if (auto old = pools_.find(name); old != pools_.end()) {
        std::shared_ptr<BackendState> b = old->second->Find(bc.name);
        if (b != nullptr && b->endpoint != endpoints.data) moved = b;
        if (b != nullptr && b->endpoint == endpoints.data) {
          state = b;
          if (b->check_endpoint != endpoints.check) new_checks.emplace_back(b, endpoints.check);
          // A weight changed in the file overrides one set through the admin API.
          if (b->file_weight != bc.weight) new_weights.push_back({name, b, bc.weight});
          if (b->max_connections.load() != bc.max_connections) {
            new_limits.emplace_back(b, bc.max_connections);
          }
        }
      }
      if (state == nullptr) {
        state =
            std::make_shared<BackendState>(bc, endpoints.data, endpoints.check, pc.health.policy);
        // At a new address, the operator's drain and weight stay with the name (unless the file
        // changed the weight, which overrides the operator's), as the tier's view would bring
        // them back a round later.
        if (moved != nullptr) {
          state->draining.store(moved->draining.load());
          if (moved->operator_weight && moved->file_weight == bc.weight) {
            state->operator_weight = moved->operator_weight;
            state->weight.store(*moved->operator_weight);
          } else if (moved->operator_weight) {
            new_weights.push_back({name, state, bc.weight});  // the tier forgets the operator's
          }
        }
      }
      backends.push_back(std::move(state));
    }
    auto& generation = generations_[name];
    if (!generation) generation = std::make_shared<std::atomic<uint64_t>>(1);
    generation->fetch_add(1);
    pools[name] = std::make_shared<const Pool>(pc, std::move(backends), generation, sticky_);
  }

  // 2. Listeners: bind what is new or moved, one acceptor per worker; undo all on a failure.
  struct Opened {
    std::string name;
    std::vector<tcp::acceptor> acceptors;
    uint16_t port;
  };
  std::vector<Opened> opened;
  for (const ListenerConfig& lc : next.listeners) {
    auto it = bound_.find(lc.name);
    if (it != bound_.end() && it->second.bind == lc.bind && it->second.protocol == lc.protocol) {
      continue;  // keeps its sockets
    }
    tcp::endpoint ep = resolved.binds.at(lc.name);
    Opened o{lc.name, {}, 0};
    for (auto& w : workers_) {
      absl::StatusOr<tcp::acceptor> a = net::Listen(w->io(), ep, /*reuse_port=*/true);
      if (!a.ok())
        return absl::UnavailableError(
            fmt::format("listener {}: {}", lc.name, a.status().message()));
      if (lc.protocol == Protocol::kTcp) {
        // Urgent data stays in the stream, forwarded in its place as any byte (its urgency is
        // lost: HAProxy does not forward it either); out of band, reads would skip it. Accepted
        // connections inherit it, also those that waited in the accept queue.
        boost::system::error_code ignored;
        a->set_option(asio::socket_base::out_of_band_inline(true), ignored);
      }
      ep.port(a->local_endpoint().port());  // with port 0, every worker takes the same one
      o.port = ep.port();
      o.acceptors.push_back(std::move(*a));
    }
    opened.push_back(std::move(o));
  }

  // 3. Commit: from here on nothing fails.
  // Only a reload has weights to change, and it runs on the control thread: the tier's record of
  // the operator's weight goes in the same turn, or a view read before (already queued here)
  // would bring the old weight back, here and on every other proxy.
  for (const NewWeight& w : new_weights) {
    w.backend->file_weight = w.weight;
    w.backend->operator_weight.reset();  // the file's new weight overrides the operator's
    w.backend->weight.store(w.weight);
    tier_sync_->OperatorChanged(*pools.at(w.pool), *w.backend);
  }
  for (auto& [state, limit] : new_limits)
    state->max_connections.store(limit);
  for (auto& [state, check] : new_checks)
    state->check_endpoint = check;  // the next check goes there
  std::map<std::string, std::shared_ptr<const ListenerState>> states;
  for (const ListenerConfig& lc : next.listeners) {
    auto& counters = listener_counters_[lc.name];
    if (!counters) counters = std::make_shared<ListenerCounters>();
    states[lc.name] = std::make_shared<const ListenerState>(ListenerState{lc, counters});
  }
  std::vector<std::string> closing;
  for (const auto& [name, lc] : bound_) {
    bool moved = std::any_of(opened.begin(), opened.end(), [&](auto& o) { return o.name == name; });
    if (moved || !states.contains(name)) closing.push_back(name);
  }
  // Backends the new file drops (or moves to another address): their clients are closed, spread
  // over their pool's shutdown jitter, to reconnect to the backends that remain, rather than
  // stay on one that no pool counts, checks or can drain any more.
  std::vector<std::pair<const BackendState*, std::chrono::milliseconds>> retired;
  for (const auto& [name, old] : pools_) {
    for (const std::shared_ptr<BackendState>& b : old->backends()) {
      auto kept = pools.find(name);
      if (kept != pools.end() && kept->second->Find(b->name()) == b) continue;
      b->retired.store(true);
      retired.emplace_back(b.get(), std::chrono::milliseconds(old->config().shutdown_jitter_ms));
    }
  }
  auto remaining = std::make_shared<std::atomic<size_t>>(workers_.size());
  for (size_t w = 0; w < workers_.size(); ++w) {
    Worker* worker = workers_[w].get();
    std::vector<std::pair<std::shared_ptr<const ListenerState>, tcp::acceptor>> accept;
    for (Opened& o : opened)
      accept.emplace_back(states[o.name], std::move(o.acceptors[w]));
    asio::post(worker->io(), [worker, pools, states, closing, remaining, applied, retired,
                              accept = std::make_shared<decltype(accept)>(std::move(accept))] {
      worker->SetPools(pools);
      for (const auto& [backend, jitter] : retired)
        worker->ShutdownSessions(backend, jitter, SessionEnd::kBackendRemoved);
      for (const std::string& name : closing)
        worker->StopAccepting(name);
      for (auto& [state, acceptor] : *accept)
        worker->Accept(state, std::move(acceptor));
      for (const auto& [name, state] : states)
        worker->UpdateListener(state);
      if (remaining->fetch_sub(1) == 1 && applied) applied();
    });
  }
  for (const std::string& name : closing) {
    bound_.erase(name);
    ports_.erase(name);
  }
  for (const Opened& o : opened) {
    bound_[o.name] = states[o.name]->config;
    ports_[o.name] = o.port;
  }
  for (const auto& [name, state] : states)
    bound_[name] = state->config;
  for (auto it = listener_counters_.begin(); it != listener_counters_.end();) {
    if (states.contains(it->first)) {
      ++it;
      continue;
    }
    // Its connections stay open: a graceful stop still waits for them.
    retired_counters_.push_back(it->second);
    it = listener_counters_.erase(it);
  }
  asio::post(threads_->context(0), [this, pools] {
    health_->Watch(pools);
    tier_sync_->SetPools(pools);
    failback_->Watch(pools);
  });
  pools_ = std::move(pools);
  config_ = std::move(next);
  binds_ = std::move(resolved.binds);
  ++applied_;
  return absl::OkStatus();
}

void Proxy::ScheduleAddressRefresh() {
  // Off: not armed; a reload that sets it arms it. One chain at a time: a refresh under way
  // arms the next wait when it is done.
  if (config_.dns_refresh_s == 0 || refresh_in_flight_ || stopping_) return;
  address_refresh_->expires_after(std::chrono::seconds(config_.dns_refresh_s));  // replaces a wait
  address_refresh_->async_wait([this](const boost::system::error_code& ec) {
    // A callback already queued when a reload re-armed the timer: one refresh at a time.
    if (ec || stopping_ || config_.dns_refresh_s == 0 || refresh_in_flight_) return;
    refresh_in_flight_ = true;
    asio::post(*reloader_,
               [this, config = config_, current = CurrentEndpoints(), before = applied_]() mutable {
                 RefreshedEndpoints r = ResolveBackends(config, current);
                 asio::post(threads_->context(0), [this, r = std::move(r), before]() mutable {
                   ApplyAddresses(std::move(r), before);
                 });
               });
  });
}

BackendEndpoints Proxy::CurrentEndpoints() const {
  BackendEndpoints out;
  for (const auto& [name, pool] : pools_) {
    for (const std::shared_ptr<BackendState>& b : pool->backends())
      out[{name, b->name()}] = {b->endpoint, b->check_endpoint};
  }
  return out;
}

void Proxy::ApplyAddresses(RefreshedEndpoints refreshed, uint64_t applied_before) {
  refresh_in_flight_ = false;
  if (stopping_) return;
  if (applied_ == applied_before) {  // else a reload came in between, with newer answers
    for (const auto& [key, why] : refreshed.failures) {
      if (refresh_failing_.insert(key).second) {
        spdlog::warn("refreshing addresses: {}; its address in force stays", why);
      }
    }
    for (auto it = refresh_failing_.begin(); it != refresh_failing_.end();) {
      if (refreshed.failures.contains(*it)) {
        ++it;
        continue;
      }
      if (refreshed.endpoints.contains(*it)) {  // not when a reload removed it
        spdlog::info("pool {}: backend {} resolves again", it->first, it->second);
      }
      it = refresh_failing_.erase(it);
    }
    // The addresses in force, with those that moved: the names that did not resolve keep
    // theirs.
    BackendEndpoints next = CurrentEndpoints();
    bool moved = false;
    for (const auto& [key, endpoints] : refreshed.endpoints) {
      auto in_force = next.find(key);
      if (in_force == next.end() || in_force->second == endpoints) continue;
      spdlog::info("pool {}: backend {} now at {} (checks {}), was {} (checks {})", key.first,
                   key.second, endpoints.data.address().to_string(),
                   endpoints.check.address().to_string(),
                   in_force->second.data.address().to_string(),
                   in_force->second.check.address().to_string());
      in_force->second = endpoints;
      moved = true;
    }
    if (moved) {
      absl::Status s =
          Apply(ResolvedConfig{.config = config_, .backends = std::move(next), .binds = binds_});
      if (!s.ok()) spdlog::error("refreshing addresses: {}", s.message());
    }
  }
  ScheduleAddressRefresh();
}

void Proxy::Reload() {
  spdlog::info("reloading {}", config_path_);
  asio::post(*reloader_, [this, current = CurrentEndpoints(), before = applied_] {
    absl::StatusOr<ProxyConfig> next = LoadProxyConfig(config_path_);
    absl::StatusOr<ResolvedConfig> resolved =
        next.ok() ? ResolveConfig(std::move(*next), current) : next.status();
    asio::post(threads_->context(0), [this, resolved = std::move(resolved), before]() mutable {
      ApplyReload(std::move(resolved), before);
    });
  });
}

void Proxy::ApplyReload(absl::StatusOr<ResolvedConfig> resolved, uint64_t applied_before) {
  if (stopping_) {
    spdlog::warn("reload ignored: stopping");
    return;
  }
  if (applied_ != applied_before) {
    // A refresh of the addresses came in between: resolved against the addresses before it, this
    // answer could move a backend it just moved.
    spdlog::info("reload: the addresses changed meanwhile; reading the file again");
    return Reload();
  }
  if (!resolved.ok()) {
    spdlog::error("reload refused, the running configuration stays: {}",
                  resolved.status().message());
    return;
  }
  ProxyConfig& next = resolved->config;
  if (next.threads != config_.threads || next.admin != config_.admin ||
      next.instance != config_.instance || next.yield_before_sleep != config_.yield_before_sleep ||
      next.redis != config_.redis) {
    spdlog::warn(
        "reload: [proxy] threads, admin, instance and yield_before_sleep, and [redis], apply at "
        "the next restart");
  }
  bool new_level = next.log_level != config_.log_level;
  // What is fixed at startup stays.
  next.threads = config_.threads;
  next.yield_before_sleep = config_.yield_before_sleep;
  next.admin = config_.admin;
  next.instance = config_.instance;
  next.redis = config_.redis;
  // Logged once every worker has the new configuration: from then on it is in force.
  absl::Status s =
      Apply(std::move(*resolved), [path = config_path_] { spdlog::info("reloaded {}", path); });
  if (!s.ok()) {
    spdlog::error("reload refused, the running configuration stays: {}", s.message());
    return;
  }
  if (new_level) {  // only once the file is in force: a refused one changes nothing
    spdlog::info("reload: log level {}", config_.log_level);
    spdlog::set_level(spdlog::level::from_str(config_.log_level));
  }
  ScheduleAddressRefresh();  // at the new dns_refresh_s
}

void Proxy::OnHealthEvent(const Pool& pool, BackendState& backend, health::Event event) {
  // Only a backend the health checks call down loses its sessions. An ejection says new
  // connections fail; the sessions it carries may be fine, and closing them would turn a
  // refusal of new clients into an outage for the existing ones.
  if (event != health::Event::kWentDown || pool.config().on_down != OnDown::kShutdownSessions) {
    return;
  }
  ShutdownSessions(pool, backend, SessionEnd::kBackendDown);
}

void Proxy::ShutdownSessions(const Pool& pool, BackendState& backend, SessionEnd why) {
  // Those of clients being connected to it too (client_session), which read these after.
  backend.shutdown_why.store(why);
  backend.shutdowns.fetch_add(1);
  auto jitter = std::chrono::milliseconds(pool.config().shutdown_jitter_ms);
  spdlog::info("pool {}: closing the sessions of {} over {} ms ({})", pool.name(), backend.name(),
               jitter.count(), SessionEndName(why));
  for (auto& w : workers_) {
    Worker* worker = w.get();
    const BackendState* b = &backend;
    asio::post(worker->io(),
               [worker, b, jitter, why] { worker->ShutdownSessions(b, jitter, why); });
  }
}

void Proxy::Run() {
  asio::io_context& control = threads_->context(0);
  asio::signal_set& signals = signals_->set;
  asio::steady_timer stop_timer(control);
  health::Clock::time_point give_up;
  // The last phase of a graceful stop: polls until the connections are gone.
  std::function<void()> await_clients = [&] {
    if (OpenConnections() == 0 || health::Clock::now() >= give_up) {
      Shutdown();
      return;
    }
    stop_timer.expires_after(std::chrono::milliseconds(50));
    stop_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec && !shut_down_) await_clients();
    });
  };
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        if (signal == SIGHUP) {
          if (stopping_) {
            spdlog::warn("reload ignored: stopping");
          } else {
            Reload();
          }
          signals.async_wait(on_signal);
          return;
        }
        auto grace = std::chrono::milliseconds(config_.stop_grace_ms);
        auto spread = std::chrono::milliseconds(config_.stop_spread_ms);
        if (stopping_ || (grace.count() == 0 && spread.count() == 0)) {
          spdlog::info("signal {}: shutting down", signal);
          stop_timer.cancel();
          Shutdown();
          return;
        }
        stopping_ = true;
        spdlog::info(
            "signal {}: stopping: /healthz answers 503; the listeners close in {} ms, then {} "
            "connections within {} ms (a second signal stops at once)",
            signal, grace.count(), OpenConnections(), spread.count());
        stop_timer.expires_after(grace);
        stop_timer.async_wait([&, spread](const boost::system::error_code& ec) {
          if (ec || shut_down_) return;
          CloseClients(spread);
          // Connections still in setup become tunnels after the closes were spread: they wait
          // for the window's end, plus the closes' own linger.
          give_up = health::Clock::now() + spread + std::chrono::milliseconds(500);
          await_clients();
        });
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  threads_->Run();
}

void Proxy::CloseClients(std::chrono::milliseconds spread) {
  spdlog::info("stopping: listeners closed; closing {} connections within {} ms", OpenConnections(),
               spread.count());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io(), [worker, spread] {
      worker->StopAllAccepting();
      worker->ShutdownSessions(nullptr, spread, SessionEnd::kStopping);
    });
  }
}

int64_t Proxy::OpenConnections() {
  std::erase_if(retired_counters_, [](const std::shared_ptr<ListenerCounters>& c) {
    return c->active.load(std::memory_order_relaxed) == 0;
  });
  int64_t open = 0;
  for (const auto& [name, counters] : listener_counters_)
    open += counters->active.load(std::memory_order_relaxed);
  for (const std::shared_ptr<ListenerCounters>& counters : retired_counters_)
    open += counters->active.load(std::memory_order_relaxed);
  return open;
}

void Proxy::Shutdown() {
  if (shut_down_) return;  // a second signal may race the graceful stop's last step
  shut_down_ = true;
  stopping_ = true;
  asio::post(threads_->context(0), [this] {
    if (address_refresh_) address_refresh_->cancel();
    health_->Stop();
    tier_sync_->Stop();
    failback_->Stop();
    if (admin_) admin_->Close();
  });
  for (size_t i = 0; i < redis_clients_.size(); ++i) {
    // Each client on its own thread; the last one is the control thread's.
    asio::io_context& io = threads_->context(i < workers_.size() ? i : 0);
    asio::post(io, [client = redis_clients_[i]] { client->Stop(); });
  }
  // Every worker closes its listeners and tunnels; the last one to finish stops the threads.
  auto remaining = std::make_shared<std::atomic<size_t>>(workers_.size());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io(), [this, worker, remaining] {
      worker->StopAllAccepting();
      worker->CloseAll();
      if (remaining->fetch_sub(1) == 1) threads_->Stop();
    });
  }
}

uint16_t Proxy::admin_port() const {
  return admin_ ? admin_->port() : 0;
}

}  // namespace proxy
