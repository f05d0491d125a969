// Sessions across the cluster, on the control thread: one owner node per client id, a session
// handed from node to node when its client moves, and persistent sessions kept in Redis so that
// they outlive the crash of their node.
//
//   ownership  owner:ID names the node that holds the session. A CONNECT claims the id first
//              (SET ... GET). If the previous owner is alive, it is asked on its node-events
//              channel to let go: it closes the old connection (5.0: 0x8E) and answers with the
//              session, through handover:REQUEST. If it is dead, or silent for kClaimTimeout,
//              the claimer reads the session from the dead owner's record instead.
//   records    a node keeps a record of each persistent session it holds (session expiry > 0):
//              session:NODE:ID, the subscriptions (each change appended as it is made) and the
//              connection's will while the client is connected, and everything (in flight,
//              queued, the will waiting for its delay) once it is not, with the session's expiry
//              as TTL; deliveries that arrive while it is offline are appended to
//              session-queue:NODE:ID; the ids are listed in sessions:NODE. What a connected
//              client has in flight or queued at the moment its node crashes is in that node's
//              memory only, and is lost. A session that ends with its connection (expiry 0) is
//              recorded only while its connection has a will, and only that will: the adopter
//              publishes it should the node die.
//   moves      the old owner of a session handed over keeps routing what matches its
//              subscriptions to the new owner (Shard::StartMove) until the new owner's
//              routes are everywhere: the new owner, as it announces the imported session's
//              routes, tells the old one ("taken", on its node-events channel, right behind the
//              route events on the same Redis connection, so heard after them).
//   adoption   when a node leaves, one survivor (adopt:NODE, once per run of the node) takes
//              every session of its list whose owner is still the dead node: each becomes an
//              offline session there, its subscriptions routed again, until its client comes
//              back or it expires. A will in the record is published there once the delay it had
//              left has passed (all of it if the record saw the client connected: the node died,
//              and its connection with it), counted from the adoption. A node that restarts
//              before anyone adopts its sessions takes them back the same way. A step Redis
//              fails (the adoption's claim, the list, a session's move) is tried again a second
//              later. A node that was only silent (stopped, paused, cut off from Redis) and
//              finds its run adopted exits (Cluster::Fenced).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "backend/session.h"
#include "state/redis_client.h"
#include "state/redis_keys.h"

namespace backend {

class Broker;

class ClusterSessions {
 public:
  // The index of a live peer by name (Peer::index); none for a node not live.
  using PeerIndex = std::function<std::optional<uint32_t>(const std::string&)>;
  ClusterSessions(Broker& broker, boost::asio::io_context& control,
                  std::shared_ptr<state::RedisClient> commands, const state::RedisKeys& keys,
                  std::string node, PeerIndex peer_index);

  // Makes this node the owner of `client_id`; `done` gets the session to resume, if another
  // node held one (none when Redis is down; for a clean start, or a session that ended with its
  // connection, only the will it had waiting, if any, to be published now: Shard::PublishIfEnded).
  // Until the node has listed the records of its previous run (Recover), claims wait for the
  // list, kClaimTimeout at most: the id may be this node's from before a crash, its session in
  // a record and not in this process.
  using ClaimDone = std::function<void(std::optional<SessionSnapshot> session)>;
  void Claim(const std::string& client_id, bool clean_start, ClaimDone done);
  // The session of `client_id` is imported on its shard, the announcements of its routes on
  // their way (ahead of this on the one Redis connection). If another node handed it over,
  // tells that node ("taken"), which stops redirecting to it.
  void Imported(const std::string& client_id);
  // The session of `client_id` ended on this node: its record (if `recorded`) goes and, with
  // `disown`, so does the id's ownership, unless another node claimed it since.
  void Ended(const std::string& client_id, bool recorded, bool disown);
  // Writes this node's record of a persistent session; with `ttl`, the session is offline and
  // expires then. The offline queue starts empty again. `failed` runs if Redis did not take it.
  void Record(const std::string& client_id, std::string snapshot,
              std::optional<std::chrono::milliseconds> ttl, std::function<void()> failed);
  // Appends subscription changes (session_codec.h) to the record of a connected session, if it is
  // `record_size` bytes long, as written; else (or if Redis did not take them) runs `refused`.
  void RecordChanges(const std::string& client_id, std::string changes, size_t record_size,
                     std::function<void()> refused);
  // Appends a delivery (session_codec.h) to an offline session's queue. `failed` runs if Redis
  // did not take it.
  void RecordQueued(const std::string& client_id, std::string delivery,
                    std::optional<std::chrono::milliseconds> ttl, std::function<void()> failed);

  // Redis is connected: records can be written.
  bool connected() const { return commands_->connected(); }

  // A message on this node's node-events channel.
  void OnEvent(std::string_view message);
  // `node`, in its run `incarnation` (Cluster: empty for a build that names none), left the
  // cluster: adopt its sessions, unless another survivor does.
  void NodeLeft(const std::string& node, const std::string& incarnation);
  // At start (the first connection to Redis): the sessions this node recorded in a previous run
  // and nobody adopted since.
  void Recover();
  // Claims still waiting (for an owner, or for the records' list) go ahead without a session.
  void Stop();

  static constexpr std::chrono::milliseconds kClaimTimeout{2000};
  // How long a step of an adoption that Redis failed waits before it is tried again.
  static constexpr std::chrono::milliseconds kAdoptionRetry{1000};
  // How long adopt:NODE names the run adopted: a run that resumes within it (stopped, paused,
  // cut off from Redis) learns that it was replaced (Cluster::Fenced).
  static constexpr std::chrono::milliseconds kAdoptionKept{3'600'000};

  // For /metrics.
  uint64_t handed_out() const { return handed_out_; }
  uint64_t taken_in() const { return taken_in_; }
  uint64_t restored() const { return restored_; }

 private:
  struct PendingClaim {
    std::string client_id;
    std::string owner;
    bool clean_start;
    ClaimDone done;
    std::unique_ptr<boost::asio::steady_timer> deadline;
  };

  void AskOwner(const std::string& client_id, const std::string& owner, bool clean_start,
                ClaimDone done);
  // Answers `node`'s claim `request` with the session this node let go of, if any.
  void HandOver(const std::string& node, const std::string& request,
                std::optional<std::string> session);
  void FinishClaim(const std::string& request, std::optional<SessionSnapshot> session);
  // The owner did not answer: takes the session from its record.
  // `owner_heard`: the owner got the request (it is alive) but did not answer in time.
  void GiveUpOnOwner(const std::string& request, bool owner_heard);
  // Reads and deletes `node`'s record of `client_id` (for a `clean_start`, its will only;
  // without `with_will`, not even that).
  void TakeRecord(const std::string& node, const std::string& client_id, bool clean_start,
                  bool with_will, ClaimDone done);
  struct RecordRead {
    std::optional<std::string> record;
    std::vector<std::string> queued;  // session-queue:NODE:ID
  };
  // The session `read` holds, as TakeRecord says.
  std::optional<SessionSnapshot> FromRecord(const std::string& node, const std::string& client_id,
                                            const RecordRead& read, bool clean_start,
                                            bool with_will);
  // `listed` runs once every session of `node`'s list is being adopted (each in adopting_); a
  // list Redis failed is read again (RetryLater).
  void AdoptAll(const std::string& node, std::function<void()> listed = {});
  // The records of the previous run are listed, or Redis took too long: claims go ahead.
  void Recovered();
  // Runs `step` of an adoption again after kAdoptionRetry (Redis failed it), unless stopped.
  void RetryLater(std::function<void()> step);
  void Adopt(const std::string& node, const std::string& client_id);
  // Whether a retried step of the adoption of `node` still applies.
  bool StillGone(const std::string& node) const;
  // The record of an adopted session is read: the session goes to its shard (if there was one),
  // then whatever waited for it.
  void Adopted(const std::string& client_id, std::optional<SessionSnapshot> session);

  Broker& broker_;
  boost::asio::io_context& control_;
  std::shared_ptr<state::RedisClient> commands_;
  const state::RedisKeys& keys_;
  std::string node_;
  PeerIndex peer_index_;

  absl::flat_hash_map<std::string, PendingClaim> claims_;  // by request id
  // Client ids whose sessions this node is adopting (the id moved here, the session not yet on
  // its shard), with what waits for it: a claim here, another node's request to let go.
  absl::flat_hash_map<std::string, std::vector<std::function<void()>>> adopting_;
  // Client ids whose sessions were handed over from another node, by that node, until imported.
  absl::flat_hash_map<std::string, std::string> moved_from_;
  bool recovered_ = false;
  // Until this node's last run is listed: the ids claimed here meanwhile (the list is late, past
  // the claims' deadline), whose sessions are this run's, not the record's.
  bool own_listed_ = false;
  absl::flat_hash_set<std::string> claimed_before_listing_;
  struct WaitingClaim {
    std::string client_id;
    bool clean_start;
    ClaimDone done;
  };
  std::vector<WaitingClaim> after_recovery_;  // claims waiting for Recovered
  boost::asio::steady_timer recovery_deadline_;
  std::vector<std::function<void()>> to_retry_;
  boost::asio::steady_timer retry_;
  bool stopped_ = false;
  uint64_t next_claim_ = 0;
  uint64_t handed_out_ = 0;
  uint64_t taken_in_ = 0;
  uint64_t restored_ = 0;
};

}  // namespace backend
