// The broker: its shards (one per I/O thread), what they share, and its lifecycle.
//
// Shared between shards, and therefore the only state with synchronisation: the retained store
// (a mutex, taken only for retained publishes and for subscriptions that ask for retained
// messages), the access rules (read-only), and a few atomic counts. Everything on the
// per-message path lives in the shards (see shard.h).
//
//   Broker broker(config);
//   if (absl::Status s = broker.Start(); !s.ok()) return Fail(s);  // binds, or says why not
//   broker.Run();  // until SIGTERM/SIGINT, then a graceful shutdown
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "backend/access_rules.h"
#include "backend/config.h"
#include "backend/message.h"
#include "backend/retained_store.h"
#include "backend/shard.h"
#include "backend/socket_token.h"

namespace net {
class HttpServer;
class IoThreads;
}  // namespace net

namespace backend {

class Broker {
 public:
  explicit Broker(BrokerConfig config);
  ~Broker();

  // Binds the listener and the admin server. Fails, naming the address, if it cannot.
  [[nodiscard]] absl::Status Start();
  // Runs until Shutdown() completes; handles SIGTERM and SIGINT by shutting down.
  void Run();
  // Stops accepting, disconnects every client (5.0: 0x8B Server shutting down) and publishes their
  // wills, leaves the cluster once the wills reached the other nodes, stops (within two seconds).
  // Thread-safe.
  void Shutdown();

  uint16_t port() const;
  uint16_t admin_port() const;

  // For the shards.
  const BrokerConfig& config() const { return config_; }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) { return *shards_[i]; }
  Shard& HomeShard(std::string_view client_id);
  const AccessRules& access() const { return access_; }
  // A retained publish on this node: stored, and in a cluster shared with the other nodes.
  void Retain(const MessagePtr& message);
  // A retained message that another node shared: stored here only.
  void RetainLocal(const MessagePtr& message);
  // The cluster this node belongs to, or null for a single broker.
  Cluster* cluster() { return cluster_.get(); }
  // Route changes of local subscriptions (see Shard::ChangeRoutes), for the cluster; `done` runs
  // on the control thread once Redis has them (or could not take them).
  void AnnounceRoutes(std::vector<std::pair<std::string, int>> deltas, std::function<void()> done);
  std::vector<MessagePtr> MatchRetained(std::string_view filter, Clock::time_point now);
  // A fresh client identifier for a client that sent an empty one.
  std::string AssignClientId();
  // A requested session expiry interval, capped by max_session_expiry_s.
  uint32_t CapSessionExpiry(uint32_t requested_s) const;
  SocketToken TrackSocket() { return SocketToken(&open_sockets_); }
  // Takes one of the max_connections places, if one is free. Thread-safe.
  std::optional<ClientSlot> ReserveClient();

 private:
  using Done = std::function<void()>;
  std::string RenderMetrics() const;
  // Runs `step` on every shard's thread, then `then` on the control thread once every step has
  // called its `done`.
  void OnEveryShard(std::function<void(Shard&, Done)> step, std::function<void()> then);
  // The steps of Shutdown after the first, on the control thread.
  void CloseLinks();
  void LeaveCluster();
  void StopWhenClosed();
  // Removes the expired retained messages no subscription came across, every kRetainedSweep.
  void SweepRetained();

  BrokerConfig config_;
  AccessRules access_;
  std::unique_ptr<net::IoThreads> threads_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<net::HttpServer> admin_;
  std::unique_ptr<Cluster> cluster_;  // on shard 0's thread

  std::mutex retained_mutex_;
  RetainedStore retained_;  // guarded by retained_mutex_
  std::atomic<int64_t> retained_count_{0};
  boost::asio::steady_timer retained_sweep_;  // on the control thread

  std::atomic<int64_t> open_sockets_{0};
  std::atomic<int64_t> client_connections_{0};  // places taken, see ReserveClient
  std::atomic<uint64_t> next_client_serial_{0};
  std::atomic<bool> accepting_{false};
  std::atomic<bool> shutting_down_{false};
  Clock::time_point shutdown_start_;  // set before the steps are posted
  // Shutdown: Redis has answered the last step. On context 0, as the cluster and the poll are.
  bool written_ = false;
};

}  // namespace backend
