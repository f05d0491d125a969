// The proxy process: I/O threads with their workers, the listeners, the pools, health checking,
// the admin API, and reloading on SIGHUP.
//
// Thread 0 is also the control thread: health checks, the admin API, signals and reloads run
// there. Configuration changes reach the other workers by posting; no lock is on the path of a
// connection.
//
// A reload is all or nothing: the new file is parsed, every address resolved and every new
// listener bound before anything changes; any failure leaves the old configuration in force.
// The file is read and its host names resolved on a thread of its own, so that a slow resolver
// holds up the reload, not the connections of thread 0.
// Backends that keep their name and address keep their health, counts, operator changes and
// connections (a new check_address only moves their checks); listeners that keep their address
// keep their sockets.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "health/health_state.h"
#include "proxy/config.h"
#include "proxy/listener_state.h"
#include "proxy/pool.h"
#include "proxy/session_end.h"
#include "state/redis_client.h"

namespace boost::asio {
class thread_pool;
}  // namespace boost::asio

namespace net {
class HttpServer;
class IoThreads;
}  // namespace net

namespace proxy {

class Failback;
class HealthManager;
class TierSync;
class Worker;

// A configuration with its addresses resolved. Resolving is blocking and may take seconds (the
// system resolver, for host names), so a reload does it off the I/O threads, before Apply.
struct ResolvedConfig {
  struct Backend {
    boost::asio::ip::tcp::endpoint data;
    boost::asio::ip::tcp::endpoint check;
    bool operator==(const Backend&) const = default;
  };
  ProxyConfig config;
  std::map<std::pair<std::string, std::string>, Backend> backends;  // by pool and backend name
  std::map<std::string, boost::asio::ip::tcp::endpoint> binds;      // by listener name
};
using BackendKey = std::pair<std::string, std::string>;  // pool and backend names
using BackendEndpoints = std::map<BackendKey, ResolvedConfig::Backend>;

// Resolves the addresses of `config` that the pools and listeners use (the admin server
// resolves its own, once, at start): the first that fails, named by its key. A backend's name
// that still resolves to its endpoint in `current` keeps it: a name with several addresses
// (round-robin DNS) may list them in another order at each lookup, and taking the first would
// move the backend, and close its clients, at every reload or refresh.
[[nodiscard]] absl::StatusOr<ResolvedConfig> ResolveConfig(ProxyConfig config,
                                                           const BackendEndpoints& current = {});

// The backends' endpoints, each resolved on its own (keeping `current`'s, as ResolveConfig
// does): a refresh of their names while the proxy runs takes those that resolved, and a name
// that does not (a pod restarting) holds up no other.
struct RefreshedEndpoints {
  BackendEndpoints endpoints;                  // those that resolved
  std::map<BackendKey, std::string> failures;  // why, for the others
  absl::Status first_failure;                  // in the configuration's order
};
RefreshedEndpoints ResolveBackends(const ProxyConfig& config, const BackendEndpoints& current);

class Proxy {
 public:
  Proxy(std::string config_path, ProxyConfig config);
  ~Proxy();

  // Binds the listeners and the admin API and starts health checks; fails, saying why, if any
  // address cannot be resolved (InvalidArgument, naming the key) or bound.
  [[nodiscard]] absl::Status Start();
  // Runs until SIGTERM or SIGINT; SIGHUP reloads the configuration file.
  //
  // A stop signal turns /healthz to 503 at once, so that a load balancer in front of the tier
  // stops sending; the listeners stay open for [proxy] stop_grace_ms. Then they close, and the
  // client connections are closed at random moments within stop_spread_ms, so that their
  // reconnects reach the other proxies as a stream, not a storm. The process ends when the last
  // connection has closed (or the window has passed). A second signal stops at once.
  void Run();
  // Stops at once: closes the listeners and every connection and ends Run.
  void Shutdown();
  // Re-reads the configuration file and resolves its addresses on a thread of its own, then
  // applies it on the control thread; the old one stays on any error, which is logged.
  void Reload();

  HealthManager& health() { return *health_; }
  TierSync& tier() { return *tier_sync_; }
  const TierSync& tier() const { return *tier_sync_; }
  bool shared_state_configured() const { return !config_.redis.url.empty(); }
  uint16_t admin_port() const;

  // For the admin API, on the control thread.
  const std::map<std::string, std::shared_ptr<const Pool>>& pools() const { return pools_; }
  const std::map<std::string, std::shared_ptr<ListenerCounters>>& listener_counters() const {
    return listener_counters_;
  }
  const ProxyConfig& config() const { return config_; }
  bool stopping() const { return stopping_; }
  // Closes this proxy's sessions to `backend` on every worker, each at a random moment within
  // the pool's shutdown jitter; on the control thread.
  void ShutdownSessions(const Pool& pool, BackendState& backend, SessionEnd why);

 private:
  struct Signals;  // the signal set (proxy.cc)

  // Applies a configuration; `applied` runs (on some worker's thread) once every worker has it.
  absl::Status Apply(ResolvedConfig next, std::function<void()> applied = {});
  // The second half of Reload, on the control thread.
  // `applied_before`: applied_ when the reload began.
  void ApplyReload(absl::StatusOr<ResolvedConfig> next, uint64_t applied_before);
  // Every [proxy] dns_refresh_s (when not 0): resolves the backends' host names again, on the
  // reload thread, and applies them where an address moved, as a reload would: a backend whose
  // address moved is a new one (its clients are closed, spread over the pool's shutdown jitter;
  // the operator's drain and weight go along), a moved check address takes the checks along. A
  // reload in between makes the answers stale: they are dropped.
  void ScheduleAddressRefresh();
  // The backends' endpoints in force, for ResolveConfig; on the control thread.
  BackendEndpoints CurrentEndpoints() const;
  void ApplyAddresses(RefreshedEndpoints refreshed, uint64_t applied_before);
  void OnHealthEvent(const Pool& pool, BackendState& backend, health::Event event);
  // A graceful stop's second phase: closes the listeners, and the client connections within
  // `spread`.
  void CloseClients(std::chrono::milliseconds spread);
  // Client connections open, in setup or tunnelled, over every listener, those a reload removed
  // included.
  int64_t OpenConnections();

  std::string config_path_;
  ProxyConfig config_;
  std::unique_ptr<net::IoThreads> threads_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<HealthManager> health_;
  std::unique_ptr<net::HttpServer> admin_;
  std::vector<std::shared_ptr<state::RedisClient>> redis_clients_;  // one per worker, + control
  std::shared_ptr<state::StickyStore> sticky_;
  std::unique_ptr<TierSync> tier_sync_;
  std::unique_ptr<Failback> failback_;  // on the control thread
  std::map<std::string, std::shared_ptr<const Pool>> pools_;
  std::map<std::string, std::shared_ptr<std::atomic<uint64_t>>> generations_;
  std::map<std::string, std::shared_ptr<ListenerCounters>> listener_counters_;
  // Of listeners a reload removed, while they still have connections.
  std::vector<std::shared_ptr<ListenerCounters>> retired_counters_;
  std::map<std::string, ListenerConfig> bound_;  // listeners with open sockets
  std::map<std::string, uint16_t> ports_;
  uint64_t applied_ = 0;                                         // configurations applied (Apply)
  std::map<std::string, boost::asio::ip::tcp::endpoint> binds_;  // the listeners', resolved
  std::unique_ptr<boost::asio::steady_timer> address_refresh_;   // on the control thread
  bool refresh_in_flight_ = false;
  std::set<BackendKey> refresh_failing_;  // backends whose names do not resolve: said once
  bool stopping_ = false;                 // from a stop signal on
  bool shut_down_ = false;                // Shutdown ran
  // Caught from construction on, so that a signal during Start (resolving can take seconds)
  // waits for Run rather than kill the process.
  std::unique_ptr<Signals> signals_;
  // Reads and resolves reloaded files, one at a time, in order. Last, so that it is joined
  // before anything its work refers to goes.
  std::unique_ptr<boost::asio::thread_pool> reloader_;
};

}  // namespace proxy
