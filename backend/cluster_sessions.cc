// ClusterSessions: claims, handovers, records and adoption through Redis.
#include "backend/cluster_sessions.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <vector>

#include "backend/broker.h"
#include "backend/session_codec.h"
#include "backend/shard.h"
#include "base/absl_format.h"

namespace backend {

namespace asio = boost::asio;
using state::RedisReply;

namespace {

// The first `parts - 1` tab-separated fields of `message`, then the rest as the last; empty if
// there are fewer.
std::vector<std::string> SplitFields(std::string_view message, size_t parts) {
  std::vector<std::string> fields;
  while (fields.size() + 1 < parts) {
    size_t tab = message.find('\t');
    if (tab == std::string_view::npos) return {};
    fields.emplace_back(message.substr(0, tab));
    message.remove_prefix(tab + 1);
  }
  fields.emplace_back(message);
  return fields;
}

// Deletes KEYS[1] if it still holds ARGV[1]: an owner lets go of a client id only if no other
// node has claimed it since.
constexpr const char* kDeleteIfOwner =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";
// Appends ARGV[1] to KEYS[1] if it is ARGV[2] bytes long, as the node last wrote it; else -1:
// a write was lost (Redis was unreachable, or another node took the record), and changes
// appended to whatever is there would make a record that is not the session.
constexpr const char* kAppendIfLength =
    "if redis.call('STRLEN', KEYS[1]) == tonumber(ARGV[2]) then "
    "return redis.call('APPEND', KEYS[1], ARGV[1]) end return -1";
// Sets KEYS[1] to ARGV[2] if it still holds ARGV[1]: a survivor takes a dead node's client id
// only if nobody claimed it since.
// 1 also if it is ARGV[2]'s already: a retry whose first try went through, its reply lost (or a
// claim here took the id first, and with it the record, which this node then finds gone).
constexpr const char* kMoveIfOwner =
    "local o = redis.call('GET', KEYS[1]) "
    "if o == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end "
    "if o == ARGV[2] then return 1 end return 0";

// Sets KEYS[1] to "ARGV[1] ARGV[2]" (the run adopted, the adopter) for ARGV[3] ms unless it
// already names the run ARGV[1]: one survivor adopts each run of a node, however close together
// the survivors saw it go, and a run after a restart is adopted again when it dies in turn. The
// value is also the fence of the run it names (state/heartbeat.h), should that run still live.
// 1 also if the adopter is ARGV[2] already: its first try's reply was lost, and it tries again.
constexpr const char* kAdoptOnce =
    "local mine = ARGV[1] .. ' ' .. ARGV[2] "
    "local v = redis.call('GET', KEYS[1]) "
    "if v == mine then return 1 end "
    "if v and string.find(v, ARGV[1] .. ' ', 1, true) == 1 then return 0 end "
    "redis.call('SET', KEYS[1], mine, 'PX', ARGV[3]) "
    "return 1";

void Ignore(absl::StatusOr<RedisReply>) {}

std::vector<std::string> WithTtl(std::vector<std::string> command,
                                 std::optional<std::chrono::milliseconds> ttl) {
  if (ttl) {
    command.push_back("PX");
    command.push_back(std::to_string(std::max<int64_t>(ttl->count(), 1)));
  }
  return command;
}

}  // namespace

ClusterSessions::ClusterSessions(Broker& broker, asio::io_context& control,
                                 std::shared_ptr<state::RedisClient> commands,
                                 const state::RedisKeys& keys, std::string node,
                                 PeerIndex peer_index)
    : broker_(broker),
      control_(control),
      commands_(std::move(commands)),
      keys_(keys),
      node_(std::move(node)),
      peer_index_(std::move(peer_index)),
      recovery_deadline_(control, kClaimTimeout),
      retry_(control) {
  recovery_deadline_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (!recovered_) {
      spdlog::warn(
          "cluster: the records of {}'s last run are not listed after {} ms: clients "
          "are served without them",
          node_, kClaimTimeout.count());
    }
    Recovered();
  });
}

void ClusterSessions::Stop() {
  stopped_ = true;
  retry_.cancel();
  to_retry_.clear();
  recovered_ = true;
  recovery_deadline_.cancel();
  for (WaitingClaim& claim : std::exchange(after_recovery_, {}))
    claim.done(std::nullopt);
  while (!claims_.empty())
    FinishClaim(claims_.begin()->first, std::nullopt);
}

// ---- Claims -----------------------------------------------------------------------------------

void ClusterSessions::Claim(const std::string& client_id, bool clean_start, ClaimDone done) {
  if (!recovered_) {
    after_recovery_.push_back({client_id, clean_start, std::move(done)});
    return;
  }
  commands_->Command(
      {"SET", keys_.Owner(client_id), node_, "GET"},
      [this, client_id, clean_start, done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
        // Served here before this node's last run is listed (the list was late): the list, when
        // it comes, must not take the session (and the record) this run now holds, whoever had
        // it before (a peer hands it over, and this run records it under this node too).
        if (!own_listed_) claimed_before_listing_.insert(client_id);
        if (!r.ok()) {
          // Redis down: the client is served here without what another node may hold for it.
          spdlog::warn("cluster: cannot claim client id {}: {}", client_id, r.status().message());
          return done(std::nullopt);
        }
        if (r->nil() || r->str == node_) {  // new, or a local takeover
          if (auto it = adopting_.find(client_id); it != adopting_.end()) {
            // This node took the id for a dead node's session a moment ago: after the session.
            it->second.push_back([done = std::move(done)] { done(std::nullopt); });
            return;
          }
          return done(std::nullopt);
        }
        if (peer_index_(r->str)) return AskOwner(client_id, r->str, clean_start, std::move(done));
        // The owner left (crashed, most likely): what it recorded is all there is.
        TakeRecord(r->str, client_id, clean_start, /*with_will=*/true, std::move(done));
      });
}

void ClusterSessions::AskOwner(const std::string& client_id, const std::string& owner,
                               bool clean_start, ClaimDone done) {
  std::string request = fmt::format("{}/{}", node_, ++next_claim_);
  auto deadline = std::make_unique<asio::steady_timer>(control_, kClaimTimeout);
  deadline->async_wait([this, request](const boost::system::error_code& ec) {
    if (!ec) GiveUpOnOwner(request, /*owner_heard=*/true);
  });
  claims_.emplace(
      request, PendingClaim{client_id, owner, clean_start, std::move(done), std::move(deadline)});
  // "takeover\tFROM\tREQUEST\tCLEAN\tCLIENT ID": the id last, as it may hold a tab.
  std::string message =
      fmt::format("takeover\t{}\t{}\t{}\t{}", node_, request, clean_start ? 1 : 0, client_id);
  // Nobody listening (the owner crashed and its Redis connection went with it): no need to wait.
  commands_->Command({"PUBLISH", keys_.NodeEvents(owner), std::move(message)},
                     [this, request](absl::StatusOr<RedisReply> r) {
                       if (!r.ok() || r->integer == 0) {
                         GiveUpOnOwner(request, /*owner_heard=*/false);
                       }
                     });
}

void ClusterSessions::GiveUpOnOwner(const std::string& request, bool owner_heard) {
  auto it = claims_.find(request);
  if (it == claims_.end()) return;
  PendingClaim claim = std::move(it->second);
  claims_.erase(it);
  spdlog::warn("cluster: node {} does not answer for the session of {}; taking its record",
               claim.owner, claim.client_id);
  // An owner that heard the request is alive, only slow: when it lets go, it publishes its
  // connection's will itself; the record's would go out a second time.
  TakeRecord(claim.owner, claim.client_id, claim.clean_start, /*with_will=*/!owner_heard,
             std::move(claim.done));
}

void ClusterSessions::FinishClaim(const std::string& request,
                                  std::optional<SessionSnapshot> session) {
  auto it = claims_.find(request);
  if (it == claims_.end()) return;
  ClaimDone done = std::move(it->second.done);
  claims_.erase(it);
  done(std::move(session));
}

void ClusterSessions::OnEvent(std::string_view message) {
  if (message.starts_with("takeover\t")) {
    std::vector<std::string> f = SplitFields(message, 5);
    if (f.empty()) return;
    if (auto it = adopting_.find(f[4]); it != adopting_.end()) {
      // The session is on its way to its shard: released once it is there.
      it->second.push_back([this, m = std::string(message)] { OnEvent(m); });
      return;
    }
    std::string from = f[1], request = f[2];
    bool clean_start = f[3] == "1";
    std::optional<uint32_t> claimer = peer_index_(from);
    // The session lives on its home shard; the answer comes back here.
    Shard& home = broker_.HomeShard(f[4]);
    asio::post(
        home.io(), [this, &home, client_id = std::move(f[4]), clean_start, claimer, from, request] {
          home.ReleaseSession(client_id, clean_start, claimer,
                              [this, from, request](std::optional<std::string> session) {
                                asio::post(control_, [this, from, request, s = std::move(session)] {
                                  HandOver(from, request, std::move(s));
                                });
                              });
        });
  } else if (message.starts_with("handover\t")) {
    std::vector<std::string> f = SplitFields(message, 3);
    if (f.empty() || !claims_.contains(f[1])) return;  // too late: the claim went ahead without
    std::string request = f[1];
    if (f[2] != "1") return FinishClaim(request, std::nullopt);
    commands_->Command(
        {"GETDEL", keys_.Handover(request)}, [this, request](absl::StatusOr<RedisReply> r) {
          if (!r.ok() || r->nil()) return FinishClaim(request, std::nullopt);
          absl::StatusOr<SessionSnapshot> s = DecodeSnapshot(r->str, Clock::now());
          if (!s.ok()) {
            spdlog::error("cluster: a session handed over is unusable: {}", s.status().message());
            return FinishClaim(request, std::nullopt);
          }
          ++taken_in_;
          if (auto claim = claims_.find(request); claim != claims_.end()) {
            moved_from_[claim->second.client_id] = claim->second.owner;
          }
          FinishClaim(request, std::move(*s));
        });
  } else if (message.starts_with("taken\t")) {
    std::string client_id(message.substr(6));
    Shard& home = broker_.HomeShard(client_id);
    asio::post(home.io(), [&home, client_id] { home.MoveTaken(client_id); });
  }
}

void ClusterSessions::Imported(const std::string& client_id) {
  auto from = moved_from_.extract(client_id);
  if (from.empty()) return;
  // After this node's announcements of the session's routes, on the same connection: the old
  // owner hears of them first.
  commands_->Command({"PUBLISH", keys_.NodeEvents(from.mapped()), "taken\t" + client_id},
                     [](absl::StatusOr<RedisReply>) {});
}

void ClusterSessions::HandOver(const std::string& node, const std::string& request,
                               std::optional<std::string> session) {
  if (session) {
    ++handed_out_;
    // Commands go out in order: the session is stored before the answer that points to it.
    commands_->Command({"SET", keys_.Handover(request), std::move(*session), "PX", "30000"},
                       Ignore);
  }
  commands_->Command({"PUBLISH", keys_.NodeEvents(node),
                      fmt::format("handover\t{}\t{}", request, session ? 1 : 0)},
                     Ignore);
}

// ---- Records ----------------------------------------------------------------------------------

void ClusterSessions::Record(const std::string& client_id, std::string snapshot,
                             std::optional<std::chrono::milliseconds> ttl,
                             std::function<void()> failed) {
  commands_->Command(
      WithTtl({"SET", keys_.DurableSession(node_, client_id), std::move(snapshot)}, ttl),
      [failed = std::move(failed)](absl::StatusOr<RedisReply> r) {
        if (!r.ok()) failed();
      });
  commands_->Command({"DEL", keys_.DurableQueue(node_, client_id)}, Ignore);
  commands_->Command({"SADD", keys_.NodeSessions(node_), client_id}, Ignore);
}

void ClusterSessions::RecordChanges(const std::string& client_id, std::string changes,
                                    size_t record_size, std::function<void()> refused) {
  commands_->Command({"EVAL", kAppendIfLength, "1", keys_.DurableSession(node_, client_id),
                      std::move(changes), std::to_string(record_size)},
                     [refused = std::move(refused)](absl::StatusOr<RedisReply> r) {
                       if (!r.ok() || r->integer < 0) refused();
                     });
}

void ClusterSessions::RecordQueued(const std::string& client_id, std::string delivery,
                                   std::optional<std::chrono::milliseconds> ttl,
                                   std::function<void()> failed) {
  std::string key = keys_.DurableQueue(node_, client_id);
  commands_->Command({"RPUSH", key, std::move(delivery)},
                     [failed = std::move(failed)](absl::StatusOr<RedisReply> r) {
                       if (!r.ok()) failed();
                     });
  if (ttl) {
    commands_->Command({"PEXPIRE", key, std::to_string(std::max<int64_t>(ttl->count(), 1))},
                       Ignore);
  }
}

void ClusterSessions::Ended(const std::string& client_id, bool recorded, bool disown) {
  if (disown) {
    commands_->Command({"EVAL", kDeleteIfOwner, "1", keys_.Owner(client_id), node_}, Ignore);
  }
  if (!recorded) return;
  commands_->Command(
      {"DEL", keys_.DurableSession(node_, client_id), keys_.DurableQueue(node_, client_id)},
      Ignore);
  commands_->Command({"SREM", keys_.NodeSessions(node_), client_id}, Ignore);
}

void ClusterSessions::TakeRecord(const std::string& node, const std::string& client_id,
                                 bool clean_start, bool with_will, ClaimDone done) {
  auto read = std::make_shared<RecordRead>();
  commands_->Command({"GET", keys_.DurableSession(node, client_id)},
                     [read](absl::StatusOr<RedisReply> r) {
                       if (r.ok() && !r->nil()) read->record = std::move(r->str);
                     });
  if (!clean_start) {
    commands_->Command({"LRANGE", keys_.DurableQueue(node, client_id), "0", "-1"},
                       [read](absl::StatusOr<RedisReply> r) {
                         if (!r.ok()) return;
                         for (RedisReply& e : r->elements)
                           read->queued.push_back(std::move(e.str));
                       });
  }
  commands_->Command(
      {"DEL", keys_.DurableSession(node, client_id), keys_.DurableQueue(node, client_id)}, Ignore);
  // Replies come in order: when this one is in, so are the reads above.
  commands_->Command({"SREM", keys_.NodeSessions(node), client_id},
                     [this, read, node, client_id, clean_start, with_will,
                      done = std::move(done)](absl::StatusOr<RedisReply>) {
                       done(FromRecord(node, client_id, *read, clean_start, with_will));
                     });
}

std::optional<SessionSnapshot> ClusterSessions::FromRecord(const std::string& node,
                                                           const std::string& client_id,
                                                           const RecordRead& read, bool clean_start,
                                                           bool with_will) {
  if (!read.record) return std::nullopt;
  Clock::time_point now = Clock::now();
  absl::StatusOr<SessionSnapshot> s = DecodeSnapshot(*read.record, now);
  if (!s.ok()) {
    spdlog::error("cluster: the record of {} on {} is unusable: {}", client_id, node,
                  s.status().message());
    return std::nullopt;
  }
  if (!with_will) s->will.reset();
  if (clean_start || s->expiry_s == 0) {
    // The session ends here, or ended with its connection (recorded only for its will): what
    // is left of it is a will not yet published, which goes out as the session ends (MQTT 5.0
    // §3.1.3.2.2; Shard::PublishIfEnded).
    if (!s->will) return std::nullopt;
    SessionSnapshot ended;  // expiry 0
    ended.will = std::move(s->will);
    return ended;
  }
  for (const std::string& bytes : read.queued) {
    absl::StatusOr<Delivery> d = DecodeDelivery(bytes, now);
    if (d.ok()) s->queued.push_back(std::move(*d));
  }
  ++restored_;
  spdlog::info("cluster: session of {} restored from the record of {}", client_id, node);
  return std::move(*s);
}

// ---- Adoption ---------------------------------------------------------------------------------

void ClusterSessions::NodeLeft(const std::string& node, const std::string& incarnation) {
  commands_->Command({"EVAL", kAdoptOnce, "1", keys_.Adoption(node), incarnation, node_,
                      std::to_string(kAdoptionKept.count())},
                     [this, node, incarnation](absl::StatusOr<RedisReply> r) {
                       if (r.ok()) {
                         if (r->integer == 1) AdoptAll(node);  // this node won
                         return;
                       }
                       // Perhaps nobody took the node's sessions: again, while it is still gone.
                       RetryLater([this, node, incarnation] {
                         if (StillGone(node)) NodeLeft(node, incarnation);
                       });
                     });
}

void ClusterSessions::RetryLater(std::function<void()> step) {
  bool armed = !to_retry_.empty();
  to_retry_.push_back(std::move(step));
  if (armed) return;
  retry_.expires_after(kAdoptionRetry);
  retry_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    for (auto& step : std::exchange(to_retry_, {}))
      step();
  });
}

void ClusterSessions::Recover() {
  AdoptAll(node_, [this] {
    own_listed_ = true;
    claimed_before_listing_.clear();
    Recovered();
  });
}

void ClusterSessions::Recovered() {
  if (std::exchange(recovered_, true)) return;
  recovery_deadline_.cancel();
  for (WaitingClaim& claim : std::exchange(after_recovery_, {}))
    Claim(claim.client_id, claim.clean_start, std::move(claim.done));
}

void ClusterSessions::AdoptAll(const std::string& node, std::function<void()> listed) {
  commands_->Command({"SMEMBERS", keys_.NodeSessions(node)},
                     [this, node, listed = std::move(listed)](absl::StatusOr<RedisReply> r) {
                       if (r.ok()) {
                         for (const RedisReply& e : r->elements) {
                           if (node == node_ && claimed_before_listing_.contains(e.str)) continue;
                           Adopt(node, e.str);
                         }
                       } else {
                         // The adoption is this node's (adopt:NODE says so): nobody else lists
                         // them. Claims waiting for the list go on waiting, up to their deadline.
                         spdlog::warn("cluster: cannot list the sessions of {}: {}; again in {} ms",
                                      node, r.status().message(), kAdoptionRetry.count());
                         return RetryLater([this, node, listed] {
                           if (StillGone(node)) AdoptAll(node, listed);
                         });
                       }
                       if (listed) listed();
                     });
}

bool ClusterSessions::StillGone(const std::string& node) const {
  // This node's own last run is gone by definition; another node, while it is not live again (a
  // restart takes its sessions back itself).
  return node == node_ || !peer_index_(node);
}

void ClusterSessions::Adopt(const std::string& node, const std::string& client_id) {
  // From before the id moves here: another node that sees it here may ask for the session
  // before the move's answer is in.
  adopting_.try_emplace(client_id);
  commands_->Command({"EVAL", kMoveIfOwner, "1", keys_.Owner(client_id), node, node_},
                     [this, node, client_id](absl::StatusOr<RedisReply> r) {
                       if (!r.ok()) {
                         // What waits for it goes on without; the session is tried again.
                         Adopted(client_id, std::nullopt);
                         return RetryLater([this, node, client_id] {
                           if (StillGone(node)) Adopt(node, client_id);
                         });
                       }
                       if (r->integer != 1) {
                         // Claimed by another node's client since: that node took it.
                         return Adopted(client_id, std::nullopt);
                       }
                       TakeRecord(node, client_id, /*clean_start=*/false, /*with_will=*/true,
                                  [this, client_id](std::optional<SessionSnapshot> s) {
                                    Adopted(client_id, std::move(s));
                                  });
                     });
}

void ClusterSessions::Adopted(const std::string& client_id, std::optional<SessionSnapshot> s) {
  if (s) {
    Shard& home = broker_.HomeShard(client_id);
    asio::post(home.io(), [&home, client_id, s = std::move(*s)]() mutable {
      home.AdoptSession(client_id, std::move(s));
    });
  }
  // What waited for the session reaches its shard after it.
  auto waiting = adopting_.extract(client_id);
  if (waiting.empty()) return;
  for (auto& then : waiting.mapped())
    then();
}

}  // namespace backend
