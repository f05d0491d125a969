// A shard is one I/O thread's share of the broker: the sessions whose client ids hash to it, the
// connections of those sessions, and a full replica of the subscription routing table.
//
// The one idea: a session never leaves its shard, and nothing on the per-message path takes a
// lock. A client id always hashes to the same shard, so a takeover or a resumed session is found
// locally. Each shard matches publishes against its own replica of every subscription in the
// broker, delivers to its own sessions directly and to other shards' sessions by posting batches to
// their threads. Subscription changes are applied to every replica before SUBACK goes out, so a
// client that has its SUBACK receives every later publish, whichever shard it arrives on.
//
//   publisher ─► shard A: match A's replica ─┬─► A's sessions: enqueue, write
//                                            └─► post batch ─► shard B: enqueue, write
//
// What waits for another shard is bounded (shard_queue.h), as what waits for another node is
// (node_link.h): a publisher whose messages feed either past its bound stops being read.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "backend/ack_wait.h"
#include "backend/cluster.h"
#include "backend/forward.h"
#include "backend/message.h"
#include "backend/metrics.h"
#include "backend/node_link.h"
#include "backend/remote_routes.h"
#include "backend/session.h"
#include "backend/shard_queue.h"
#include "backend/socket_token.h"
#include "backend/subscription_trie.h"

namespace backend {

class Broker;
class Connection;
struct BrokerConfig;

// A change to the routing table, applied to every shard's replica.
struct RouteChange {
  bool add = true;
  std::string filter;  // without "$share/GROUP/"
  std::string group;   // empty: not shared
  Subscriber subscriber;
};

// A client socket the shard holds before it becomes a Connection (a handshake waiting for its
// CONNECT). Registered with the shard while it lives, so that shutdown can close it at once rather
// than wait for its connect timeout.
class PendingSocket {
 public:
  // Closes the socket; the object goes away once its pending operations complete.
  virtual void Abort() = 0;

 protected:
  ~PendingSocket() = default;
};

// One of the broker's max_connections places, taken by the handshake that admits a client and
// given back when its connection ends. Taking it when the CONNECT is vetted, not when the
// connection starts on its home shard, is what keeps a burst of simultaneous CONNECTs, vetted on
// several shards at once, within the limit.
class ClientSlot {
 public:
  ClientSlot() = default;
  // `count` already includes this slot (see Broker::ReserveClient).
  explicit ClientSlot(std::atomic<int64_t>* count) : count_(count) {}
  ClientSlot(ClientSlot&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
  ClientSlot& operator=(ClientSlot&& other) noexcept {
    if (this != &other) {
      Release();
      count_ = std::exchange(other.count_, nullptr);
    }
    return *this;
  }
  ~ClientSlot() { Release(); }

 private:
  void Release() {
    if (count_ != nullptr) count_->fetch_sub(1);
    count_ = nullptr;
  }
  std::atomic<int64_t>* count_ = nullptr;
};

// What a handshake hands to the shard that owns the client id.
struct ConnectionSeed {
  int native_socket = -1;
  boost::asio::ip::tcp protocol = boost::asio::ip::tcp::v4();
  SocketToken token;
  ClientSlot slot;
  mqtt::Connect connect;
  std::string pending_bytes;  // read after the CONNECT, not processed yet
  bool client_id_assigned = false;
  // The client's own address when a proxy sent a PROXY header; else the socket's peer.
  std::optional<boost::asio::ip::tcp::endpoint> client;
};

class Shard {
 public:
  Shard(Broker& broker, uint32_t index, boost::asio::io_context& io);
  ~Shard();

  uint32_t index() const { return index_; }
  boost::asio::io_context& io() { return io_; }
  Broker& broker() { return broker_; }
  const BrokerConfig& config() const;
  ShardMetrics& metrics() { return metrics_; }
  // A buffer for reading, shared by this shard's connections: a read uses it only within one
  // handler, so idle connections hold no read buffer of their own.
  std::string& read_scratch() { return read_scratch_; }

  // Accepting. Listen before the threads run.
  [[nodiscard]] absl::Status Listen(const boost::asio::ip::tcp::endpoint& endpoint);
  uint16_t port() const;

  // Takes over a connection whose CONNECT a handshake has read. On this shard's thread.
  void Adopt(ConnectionSeed seed);

  // Binds `connection` to the session of its client id: resumes it (clean start 0) or starts a
  // new one, taking the session over from a connection that holds it (MQTT 5.0 §3.1.4).
  struct Attached {
    Session* session;
    bool present;
  };
  // `expiry_s` is the session expiry interval the connection negotiated.
  Attached Attach(Connection& connection, const mqtt::Connect& connect, uint32_t expiry_s);
  // The subscriptions of `session` changed as `changes` route them (its connection's SUBSCRIBE or
  // UNSUBSCRIBE): a record of it in Redis follows.
  void SubscriptionsChanged(Session& session, const std::vector<RouteChange>& changes);
  // In a cluster: makes this node the owner of the connection's client id first (Cluster::Claim),
  // importing the session another node hands over, then calls `then`. A request from another
  // node to release the id waits until `then` has run, so that claims made one after another
  // hand the session on in the same order.
  void Claim(const mqtt::Connect& connect, std::function<void()> then);
  // Another node claimed `client_id`: closes its connection here (0x8E) and ends the session
  // here. `done` gets the session, encoded, if it goes on there (not a clean start); if the
  // claimer is a live peer (its index), the session moves there (StartMove) first.
  void ReleaseSession(const std::string& client_id, bool clean_start,
                      std::optional<uint32_t> claimer,
                      std::function<void(std::optional<std::string>)> done);
  // The node a session moved to has it, routed everywhere (its "taken"): see StartMove.
  void MoveTaken(const std::string& client_id);
  // A session of a node that left, adopted by this one: offline here until its client comes
  // back or it expires.
  void AdoptSession(const std::string& client_id, SessionSnapshot snapshot);
  // The connection of `session` is gone. Publishes `will` after `will_delay_s` (or at once), and
  // ends the session after `expiry_s` (0: now, 0xFFFFFFFF: never) unless it is resumed first.
  void Detach(Session& session, std::optional<mqtt::Will> will, uint32_t will_delay_s,
              uint32_t expiry_s);

  // Routes a message published on this node: to every matching session of every shard, and,
  // in a cluster, to every other node with matching routes, once per node. Each forward of a
  // QoS 1 or 2 message is registered on `wait` (may be null). Returns what is congested after
  // this message (a node link, another shard), if anything: the publisher should stop being
  // read until it drains.
  Backpressure* Publish(const MessagePtr& message, const std::shared_ptr<AckWait>& wait = nullptr);
  // Routes a message node `from` forwarded: to this node's sessions only, as `spec` says. Returns
  // what is congested, as Publish does: the link it came on should stop being read.
  Backpressure* PublishForwarded(const MessagePtr& message, ForwardSpec spec,
                                 std::string_view from);
  // Delivers what another shard's ShardQueue posted here.
  void ReceiveDeliveries(ShardBatch batch);
  // Makes the queues to the other shards, once all of them exist (before any thread runs).
  void ConnectShards();
  // Bytes posted to the other shards and not yet taken; from any thread.
  size_t queued_for_other_shards() const;

  // The cluster's view (from the control thread): the live peers, their routes.
  void SetPeers(const std::vector<Peer>& peers);
  void ApplyRemoteRoutes(const std::vector<RemoteRouteChange>& changes);
  // The routing table change for one of a session's subscriptions ("$share/G/F" or a filter).
  RouteChange RouteFor(const std::string& full, const SubscriptionRecord& record,
                       uint64_t session_id, bool add) const;
  // Applies `changes` to every replica, then calls `done` on this shard's thread. With
  // `announce`, in a cluster, the routes that appear or go are announced to the other nodes
  // (and `done` waits for Redis too).
  void ChangeRoutes(std::vector<RouteChange> changes, std::function<void()> done,
                    bool announce = true);
  // Asks for `connection` to be pumped and flushed once the current handler is done.
  void MarkDirty(Connection& connection);
  // The same for a link to another node.
  void MarkDirty(NodeLink& link);

  // Shutdown, in three steps on this shard's thread, each once every shard has finished the one
  // before (Broker::Shutdown).
  // 1. Stops accepting; closes every client with `reason` (5.0 DISCONNECT), publishing its will
  //    as any close by the server does (so does mosquitto), and every handshake in progress;
  //    refuses connections handed over later. The other nodes' links stay open: what they
  //    forward meanwhile still reaches this node's sessions (and their records in Redis).
  void CloseClients(mqtt::ReasonCode reason);
  // 2. Once the links to the other nodes have delivered what step 1 forwarded (the wills), or at
  //    `deadline`, closes them for good and runs `done`.
  void CloseLinks(Clock::time_point deadline, std::function<void()> done);
  // 3. Once this node has left the cluster: closes the other nodes' links to it.
  void CloseNodeConnections(mqtt::ReasonCode reason);

  // Connections register while open, handshakes while they wait for their CONNECT.
  void Register(Connection* c) { connections_.insert(c); }
  void Unregister(Connection* c) { connections_.erase(c); }
  void Register(PendingSocket* p) { pending_sockets_.insert(p); }
  void Unregister(PendingSocket* p) { pending_sockets_.erase(p); }

 private:
  struct SessionSlot;

  void Accept();
  void StopAccepting();
  // Closes the connections that are (`links`) or are not other nodes' links.
  void Disconnect(mqtt::ReasonCode reason, bool links);
  // Applies `changes` to this shard's replica; with `deltas`, records which subscriptions
  // appeared (+1) or went (-1), by route field, for the cluster.
  void ApplyRouteChanges(const std::vector<RouteChange>& changes,
                         std::vector<std::pair<std::string, int>>* deltas = nullptr);
  // Delivers matches_ (non-shared subscriptions merged per session, shared ones each). `local`:
  // published on this node (not forwarded by another), its publisher's acknowledgement waiting
  // on `wait` (may be null) for what is redirected to other nodes too. Returns a shard queue
  // that is congested after this, or, for a `local` message, a link (to a node a session moved
  // to), if any.
  Backpressure* DeliverMatches(const MessagePtr& message, bool local,
                               const std::shared_ptr<AckWait>& wait = nullptr);
  // Chooses the member that gets a message of a shared subscription, among the local members
  // (`local`) and the other nodes' (`remote`), round robin over all of them.
  void ChooseShared(SubscriptionTrie::SharedGroup* local, SubscriptionTrie::SharedGroup* remote);
  void Deliver(uint64_t session_id, Delivery delivery);
  // A delivery node `from` matched for a session that moved here (ForwardTarget); on the
  // client id's home shard.
  void DeliverTo(const std::string& client_id, Delivery delivery, uint32_t from);
  void ScheduleFlush();
  void Flush();
  SessionSlot& NewSlot(const std::string& client_id);
  // Closes the connection of `slot`, if any, for a new connection of its client id (§3.1.4) and
  // publishes the will as takeover does. True if the session goes on; false if it must end
  // (a clean start, or a session that lasted only as long as its connection).
  bool TakeOver(SessionSlot& slot, bool clean_start);
  // A session handed over to live peer `node` (ReleaseSession) leaves its subscriptions
  // (`removals`) in every replica, redirected there: what matches them, published here or
  // forwarded here by a node that has not yet heard of the move, goes on to the session on its
  // new node (a ForwardTarget) instead of nowhere. Once the new node's routes are announced
  // ("taken", or kMoveWait without it), this node's routes for them are withdrawn; kMoveGrace
  // later, with what was on its way here, the redirection ends. Non-shared deliveries of
  // publishes made here after the new node took the session are not redirected: this node
  // forwards them there itself.
  void StartMove(const std::string& client_id, uint64_t session_id, uint32_t node,
                 std::vector<RouteChange> removals);
  // Withdraws the routes of `client_id`'s moved session, and ends the move kMoveGrace later.
  void WithdrawMove(const std::string& client_id);
  // Ends `client_id`'s move (its subscriptions leave every replica), if there is one.
  void EndMove(const std::string& client_id);
  struct Move;
  // Calls `then` for `client_id` after `after`, if `move` is still its move by then.
  void ArmMoveTimer(const std::string& client_id, Move& move, std::chrono::seconds after,
                    void (Shard::*then)(const std::string&));
  // Runs `f` on every shard, in order behind what was posted to each before: on this one now.
  void OnEveryShard(const std::function<void(Shard&)>& f);
  // Where a moved session went (in every replica); `taken`: it is routed there.
  struct Redirect {
    std::string client_id;
    uint32_t node;
    bool taken = false;
  };
  // Sends `delivery` on to the moved session; a QoS 1 or 2 one is registered on `wait`. Returns
  // the link if it is congested after this.
  NodeLink* SendOn(const Redirect& to, Delivery delivery,
                   const std::shared_ptr<AckWait>& wait = nullptr);
  // Ends a session of `client_id` left here from before another node owned the id.
  void EndLeftover(const std::string& client_id);
  // Installs a session another node handed over, its subscriptions routed, then calls `then`.
  void ImportSession(const std::string& client_id, SessionSnapshot snapshot,
                     std::function<void()> then);
  // In a cluster, persistent sessions are recorded in Redis, and others while their connection
  // has a will (cluster_sessions.h).
  bool Recordable(const SessionSlot& slot) const;
  // Writes the record of `slot`: its subscriptions and its connection's will, or with `offline`
  // everything it holds, the will that waits for its delay too.
  void Record(SessionSlot& slot, bool offline);
  // A write of the record of session `session_id` (or of its queue) was lost, or its changes
  // refused (`rewrite`): unless it has been written whole since (`generation`), it is written
  // whole again, at once for refused changes of a connected session (Redis answered), else at
  // its next change or disconnection, or kRecordRetry later, whichever comes first.
  void RecordLost(uint64_t session_id, uint64_t generation, bool rewrite);
  // In kRecordRetry, writes whole again the records RecordLost left unsure, if Redis is
  // connected then (during an outage every write would fail at once), else waits again.
  void ArmRecordRetry();
  void RewriteUnsureRecords();
  // RecordLost on this shard's thread, for the control thread to call.
  std::function<void()> WhenRecordLost(uint64_t session_id, uint64_t generation, bool rewrite);
  // Appends a delivery to the record of an offline session.
  void RecordQueued(SessionSlot& slot, std::string delivery);
  // Runs `f` on the control thread with the cluster's sessions, if in a cluster.
  void ToCluster(std::function<void(ClusterSessions&)> f);
  void EndClaim(const std::string& client_id);
  // Ends a session: its will, its routes, its record. With `id_stays`, a new session of the same
  // client id starts here at once, so this node stays the id's owner. With `moved_to`, it goes
  // on on that node, and its routes stay redirected there for a while (StartMove).
  void EndSession(SessionSlot& slot, bool id_stays = false,
                  std::optional<uint32_t> moved_to = std::nullopt);
  // A snapshot of a session that has ended (with its connection, when its node died; or by the
  // clean start of the claim that read it) holds nothing but its will, which goes out now: the
  // end of the session comes before any will delay (§3.1.3.2.2). True if `snapshot` is one.
  bool PublishIfEnded(SessionSnapshot& snapshot);
  // Publishes `will` after `delay` (or now), unless the session is resumed or ends first.
  void AwaitWill(SessionSlot& slot, mqtt::Will will, std::chrono::milliseconds delay);
  // `publisher_session`: for No Local (0: none).
  void PublishWill(uint64_t publisher_session, mqtt::Will will);
  void ArmSessionTimer(SessionSlot& slot);
  SessionSlot* FindSlot(uint64_t session_id);

  Broker& broker_;
  uint32_t index_;
  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_;
  ShardMetrics metrics_;
  std::string read_scratch_;

  absl::flat_hash_map<uint64_t, std::unique_ptr<SessionSlot>> sessions_;
  StringMap<SessionSlot*> by_client_id_;
  uint64_t next_session_serial_ = 0;
  absl::flat_hash_set<Connection*> connections_;
  absl::flat_hash_set<PendingSocket*> pending_sockets_;
  // Client ids with claims in progress, the releases that wait for them, and the deliveries
  // another node redirected here before the session arrived.
  StringMap<int> claiming_;
  StringMap<std::vector<std::function<void()>>> waiting_releases_;
  StringMap<std::vector<Delivery>> parked_;
  // Sessions that moved to another node: their subscriptions' ids, in every shard's replica;
  // the moves themselves on the client id's home shard.
  absl::flat_hash_map<uint64_t, Redirect> redirects_;
  StringMap<std::unique_ptr<Move>> moves_;
  bool stopping_ = false;      // CloseClients ran: adopt nothing more
  bool links_closed_ = false;  // CloseLinks ran: open no more
  boost::asio::steady_timer shutdown_timer_;
  // Sessions whose records lost a write since they were last written whole: to be rewritten
  // whole, by their next change or by RewriteUnsureRecords once the timer fires.
  static constexpr std::chrono::seconds kRecordRetry{1};
  absl::flat_hash_set<uint64_t> unsure_records_;
  boost::asio::steady_timer record_retry_;

  SubscriptionTrie routes_;
  std::vector<Subscriber> matches_;  // scratch for Publish
  // By destination shard, none to this one; fixed before the threads run.
  std::vector<std::unique_ptr<ShardQueue>> queues_;
  // The cluster.
  RemoteRoutes remote_routes_;
  absl::flat_hash_map<uint32_t, std::shared_ptr<NodeLink>> links_;            // by peer index
  StringMap<uint32_t> peer_indices_;                                          // by peer name
  absl::flat_hash_map<uint32_t, ForwardSpec> plans_;                          // scratch for Publish
  std::vector<SubscriptionTrie::SharedGroup*> local_groups_, remote_groups_;  // scratch
  std::vector<std::shared_ptr<Connection>> dirty_;
  std::vector<std::shared_ptr<Connection>> flushing_;  // dirty_ while Flush() writes them
  std::vector<std::shared_ptr<NodeLink>> dirty_links_;
  bool flush_scheduled_ = false;
};

}  // namespace backend
