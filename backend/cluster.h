// This node's membership of the cluster, through Redis, on the control thread (shard 0's).
//
//   registry   every heartbeat_ms: ZADD nodes NOW SELF and the node's address with a TTL; the
//              nodes heard from within node_timeout_ms are the live peers. A node that dies stops
//              refreshing and leaves by itself; its routes go with it and links to it close.
//   routes     the filters this node's clients subscribe to, counted across shards, in the hash
//              routes:SELF (a shared subscription as "$share/GROUP/FILTER" with its member
//              count); each change is also published on the route-events channel, which every
//              node applies to its shards' RemoteRoutes at once. After any gap (a reconnect), each
//              node reads every live peer's whole hash again; every few seconds, those of the
//              peers whose routes-version (sb:node:NAME) moved since.
//   sessions   one owner node per client id, sessions handed over between nodes, persistent
//              sessions recorded in Redis (cluster_sessions.h).
//   retained   the retained message of every topic, in the hash retained (encoded as a PUBLISH),
//              read by a node when it starts; between running nodes, retained messages travel as
//              forwards flagged to be stored.
//
// Without Redis the node is a single broker and none of this runs.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "backend/cluster_sessions.h"
#include "backend/config.h"
#include "backend/message.h"
#include "state/name_claim.h"
#include "state/redis_client.h"
#include "state/redis_keys.h"

namespace backend {

class Broker;

// Another node of the cluster, as the shards see it.
struct Peer {
  uint32_t index;  // stable for the life of this process
  std::string name;
  boost::asio::ip::tcp::endpoint address;
};

// A change to another node's routes, for the shards' RemoteRoutes.
struct RemoteRouteChange {
  uint32_t node;
  std::string field;
  uint32_t count;  // 0: removed
};

class Cluster {
 public:
  // The exit status of a node that learns the others adopted its sessions (Fenced): EX_TEMPFAIL,
  // for a supervisor to restart it.
  static constexpr int kFencedExitStatus = 75;

  Cluster(Broker& broker, boost::asio::io_context& control, const ClusterConfig& config,
          std::string node, boost::asio::ip::tcp::endpoint advertise);
  ~Cluster();

  void Start();
  // Leaves the cluster at once: the others stop routing here without waiting for the timeout.
  void Stop();
  // Runs `done` once Redis has answered everything sent so far (session records among them), or
  // failed to: what must be written before the process exits.
  void Flush(std::function<void()> done);
  // The control thread's io_context: every call below runs there.
  boost::asio::io_context& control() { return control_; }

  // Local subscription routes appeared (+1) or went (-1): each field is a filter, or
  // "$share/GROUP/FILTER". `done` runs once Redis has stored and published the changes, or has
  // failed to (a SUBACK waits for this, so that the other nodes route to a subscriber that has
  // its SUBACK). On the control thread.
  void LocalRoutes(const std::vector<std::pair<std::string, int>>& deltas,
                   std::function<void()> done);
  // A retained message was set (or deleted, with an empty payload) on this node.
  void RetainedChanged(const MessagePtr& message);
  // The retained message of `topic` expired here: gone from Redis too, if the one there has.
  void RetainedExpired(const std::string& topic);

  // Client-id ownership, handovers and persistent session records.
  ClusterSessions& sessions() { return *sessions_; }
  // The token node links present (from Redis, once read); any thread.
  std::optional<std::string> secret() const;
  // Whether a CONNECT's password is the cluster's secret; any thread.
  bool IsSecret(const std::optional<std::string>& password) const;

  // Whether the node may be sent clients (its /healthz): it knows the live peers and their
  // routes (two heartbeat rounds through: the second comes after the first's route reads), or
  // two node timeouts have passed since the start without that (Redis unreachable, say), and it
  // serves alone as it would on losing Redis. Before, its clients' messages would match no other
  // node's subscribers, and a client moving here would leave its session behind. On the control
  // thread.
  bool ready() const;
  // For /metrics, on the control thread.
  size_t peers() const { return peers_.size(); }
  size_t local_routes() const { return local_routes_.size(); }
  size_t remote_routes() const;
  bool connected() const { return commands_->connected(); }
  bool name_shared() const { return name_.shared(); }

 private:
  void Heartbeat();
  // Another node took this run for gone and adopted its sessions (`fence`: "RUN ADOPTER"): its
  // clients' sessions and wills are that node's now, and its peers have dropped its routes and
  // links. It must not serve on beside them: the process exits at once with kFencedExitStatus,
  // as if it had crashed, and comes back clean when restarted. (HBase fences a region server
  // the same way: one declared dead aborts when it learns of it.)
  [[noreturn]] void Fenced(const std::string& fence);
  // Two node timeouts: how long a joining node may take to learn the cluster.
  std::chrono::milliseconds Grace() const {
    return 2 * std::chrono::milliseconds(config_.node_timeout_ms);
  }
  // How long after Redis returns nobody is taken for gone: every peer that lived through the
  // outage reconnects within its Redis client's longest backoff of this node's return (and
  // beats at once), then is given the grace.
  std::chrono::milliseconds ReturnGrace() const {
    return Grace() + state::RedisClient::kLastBackoff;
  }
  // Rounds in a row a peer must be missing from the live set to be taken for gone: one missing
  // round can be Redis's doing (FLUSHALL, its clock stepped forward, an evicted node key), and
  // every live peer beats again before the next.
  static constexpr uint32_t kMissingRounds = 3;
  void LoadSecret();
  struct LivePeer {
    std::string name;
    std::string address;
    std::string routes_version;  // empty when the peer writes none
  };
  void OnLivePeers(std::vector<LivePeer> live);
  // Reads the routes hash of every live peer (`all`), or of those whose routes-version changed
  // since their last read, and turns it into changes against what the shards know.
  void Resync(bool all);
  // Writes a new routes-version after a change of this node's routes hash (in order behind it).
  void RoutesChanged();
  std::string RoutesVersion() const;
  void OnRouteEvent(std::string_view message);
  void PushRoutes(std::vector<RemoteRouteChange> changes);
  void PushPeers();
  void LoadRetained();
  // Measures this host's wall clock against Redis's (SetWallClockOffset, message.h).
  void LearnClock();
  void LocalRoute(const std::string& field, int delta);
  uint32_t IndexOf(const std::string& name);

  Broker& broker_;
  boost::asio::io_context& control_;
  ClusterConfig config_;
  std::string node_;
  std::string advertise_;
  state::RedisKeys keys_;
  std::shared_ptr<state::RedisClient> commands_;
  std::shared_ptr<state::RedisClient> events_;
  // Its run() is this run of the node: a random value per process, so that a restart never
  // repeats one. It leads this node's routes-version (then a count of changes), so the others
  // know each run they see go (adopt:NODE names it).
  state::NameClaim name_;
  boost::asio::steady_timer heartbeat_;
  int ticks_ = 0;
  bool stopped_ = false;

  absl::flat_hash_map<std::string, uint32_t> local_routes_;  // field -> count on this node
  std::map<std::string, Peer> peers_;                        // live peers by name
  absl::flat_hash_map<std::string, uint32_t> indices_;       // every name ever seen
  // What this node has told its shards of each peer's routes, to turn a full read into changes.
  absl::flat_hash_map<uint32_t, absl::flat_hash_map<std::string, uint32_t>> known_routes_;
  // Route events heard from each peer, counted, and, while full reads of its routes are in
  // flight, the count at each field's last event: a read sent before an event it may not reflect
  // leaves that field as the event set it (events come on another connection, and can overtake
  // a read's reply).
  struct RouteEvents {
    uint64_t heard = 0;
    uint32_t reads = 0;
    absl::flat_hash_map<std::string, uint64_t> last;
  };
  absl::flat_hash_map<uint32_t, RouteEvents> route_events_;
  // Each peer's routes-version: as its last heartbeat read it, and as of its last full read. The
  // periodic resync skips a peer whose version has not moved, so that its cost does not grow with
  // every node's routes while nothing changes.
  struct RouteVersions {
    std::string seen;
    std::string synced;
  };
  absl::flat_hash_map<uint32_t, RouteVersions> route_versions_;
  uint64_t routes_changes_ = 0;
  std::unique_ptr<ClusterSessions> sessions_;
  bool connected_before_ = false;
  // When Redis last came back after a gap: the others' heartbeats may look stale until they
  // write again, so for a while nobody is taken for gone.
  std::chrono::steady_clock::time_point redis_since_;
  bool resync_after_grace_ = false;  // every peer's routes read once the grace is over
  std::chrono::steady_clock::time_point started_at_;
  uint32_t peer_rounds_ = 0;  // heartbeat rounds that read the live peers, up to 2
  absl::flat_hash_map<std::string, uint32_t> missing_;  // live peers' rounds missing in a row
  mutable std::mutex secret_mutex_;
  std::optional<std::string> secret_;  // guarded by secret_mutex_
};

}  // namespace backend
