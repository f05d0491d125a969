// Cluster: registry, routes and retained messages through Redis, on the control thread.
#include "backend/cluster.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <charconv>
#include <cstdlib>
#include <random>

#include "absl/cleanup/cleanup.h"
#include "backend/broker.h"
#include "backend/shard.h"
#include "base/absl_format.h"
#include "base/host_port.h"
#include "state/heartbeat.h"
#include "state/replace_field.h"

namespace backend {

namespace asio = boost::asio;
using state::RedisReply;

namespace {

uint32_t ParseCount(const std::string& s) {
  uint32_t n = 0;
  std::from_chars(s.data(), s.data() + s.size(), n);
  return n;
}

// A field's count as the routes hash keeps it: non-shared routes are present or not.
bool IsShared(std::string_view field) {
  return field.substr(0, 7) == "$share/";
}

// Deletes retained message ARGV[1] from hash KEYS[1] if it has expired on Redis's clock, less
// ARGV[2] milliseconds (a node removes one from memory when its own expiry passes, which its
// encoding may have rounded up by a millisecond): a node set the topic again meanwhile, or it is
// already gone. The value is as EncodeMessage writes it (message.h): 1, then the expiry as a
// big-endian u64.
constexpr const char* kDeleteIfExpired =
    "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if v and string.byte(v, 1) == 1 and #v >= 9 then "
    "  local at = 0 "
    "  for i = 2, 9 do at = at * 256 + string.byte(v, i) end "
    "  local t = redis.call('TIME') "
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "  if at > 0 and at <= now + tonumber(ARGV[2]) then "
    "    return redis.call('HDEL', KEYS[1], ARGV[1]) "
    "  end "
    "end "
    "return 0";
constexpr std::chrono::milliseconds kExpirySlack{1000};

}  // namespace

Cluster::Cluster(Broker& broker, asio::io_context& control, const ClusterConfig& config,
                 std::string node, asio::ip::tcp::endpoint advertise)
    : broker_(broker),
      control_(control),
      config_(config),
      node_(std::move(node)),
      advertise_(base::HostPort{advertise.address().to_string(), advertise.port()}.ToString()),
      keys_(config.prefix),
      name_("node", node_, keys_.NameRun("node", node_),
            2 * std::chrono::milliseconds(config.node_timeout_ms)),
      heartbeat_(control) {
  state::RedisOptions options = *state::ParseRedisUrl(config.redis_url);  // checked on load
  commands_ = state::RedisClient::Create(control, options);
  events_ = state::RedisClient::Create(control, options);
  events_->Subscribe(keys_.RouteEvents(),
                     [this](std::string_view, std::string_view message) { OnRouteEvent(message); });
  sessions_ =
      std::make_unique<ClusterSessions>(broker_, control_, commands_, keys_, node_,
                                        [this](const std::string& name) -> std::optional<uint32_t> {
                                          auto p = peers_.find(name);
                                          if (p == peers_.end()) return std::nullopt;
                                          return p->second.index;
                                        });
  events_->Subscribe(keys_.NodeEvents(node_), [this](std::string_view, std::string_view message) {
    sessions_->OnEvent(message);
  });
  commands_->OnConnect([this] {
    // Before anything stored is read: its expiry times are on Redis's clock.
    LearnClock();
    // After a gap, publish everything this node has, and read everything the others have. In one
    // transaction: a peer's read between the DEL and the HSETs would find no routes.
    auto ignore = [](absl::StatusOr<RedisReply>) {};
    commands_->Command({"MULTI"}, ignore);
    commands_->Command({"DEL", keys_.Routes(node_)}, ignore);
    for (const auto& [field, count] : local_routes_)
      commands_->Command({"HSET", keys_.Routes(node_), field, std::to_string(count)}, ignore);
    commands_->Command({"EXEC"}, ignore);
    RoutesChanged();  // no events for what was rewritten: the others find it by the version
    if (std::exchange(connected_before_, true)) {
      redis_since_ = std::chrono::steady_clock::now();  // a reconnection
      resync_after_grace_ = true;
      missing_.clear();  // rounds missed before the gap are no evidence after it
    } else {
      sessions_->Recover();
    }
    Heartbeat();
    LoadRetained();
  });
  events_->OnConnect([this] { Resync(/*all=*/true); });
}

Cluster::~Cluster() {
  // Commands still waiting (the threads may stop before Redis answered) are answered now, while
  // what their callbacks use is still there; the clients' own destructors come after the rest.
  commands_->Stop();
  events_->Stop();
}

void Cluster::Start() {
  spdlog::info("cluster: node {} joining through {} as {}", node_,
               state::RedactRedisUrl(config_.redis_url), advertise_);
  started_at_ = std::chrono::steady_clock::now();
  commands_->Start();
  events_->Start();
  heartbeat_.expires_after(std::chrono::milliseconds(config_.heartbeat_ms));
  heartbeat_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Heartbeat();
  });
}

void Cluster::Stop() {
  if (stopped_) return;
  stopped_ = true;
  heartbeat_.cancel();
  auto ignore = [](absl::StatusOr<RedisReply>) {};
  commands_->Command({"ZREM", keys_.Nodes(), node_}, ignore);
  commands_->Command({"DEL", keys_.Routes(node_), keys_.Node(node_)}, ignore);
  for (const auto& [field, count] : local_routes_) {
    commands_->Command({"PUBLISH", keys_.RouteEvents(), node_ + "\t" + field + "\t0"}, ignore);
  }
  events_->Stop();
  sessions_->Stop();  // claims still waiting go ahead without a session
}

void Cluster::Flush(std::function<void()> done) {
  // Replies come in order: this one's arrival means every command before it was answered.
  commands_->Command({"PING"}, [done = std::move(done)](absl::StatusOr<RedisReply>) { done(); });
}

uint32_t Cluster::IndexOf(const std::string& name) {
  auto [it, added] = indices_.emplace(name, static_cast<uint32_t>(indices_.size()));
  return it->second;
}

size_t Cluster::remote_routes() const {
  size_t n = 0;
  for (const auto& [node, fields] : known_routes_)
    n += fields.size();
  return n;
}

void Cluster::LoadSecret() {
  // At every heartbeat: a Redis that lost the key (a restart, FLUSHALL, eviction) gets this
  // node's back, and where a node that started meanwhile wrote a new one, every node ends up with
  // that one within a heartbeat.
  std::optional<std::string> token = secret();
  if (!token) {
    std::random_device random;
    token = fmt::format("{:08x}{:08x}{:08x}{:08x}", random(), random(), random(), random());
  }
  // The first node's token stays; every node then reads the one that did.
  commands_->Command(
      {"SET", keys_.ClusterSecret(), *token, "NX"}, [this](absl::StatusOr<RedisReply>) {
        commands_->Command({"GET", keys_.ClusterSecret()}, [this](absl::StatusOr<RedisReply> r) {
          if (!r.ok() || r->nil()) return;
          std::lock_guard lock(secret_mutex_);
          secret_ = r->str;
        });
      });
}

std::optional<std::string> Cluster::secret() const {
  std::lock_guard lock(secret_mutex_);
  return secret_;
}

bool Cluster::IsSecret(const std::optional<std::string>& password) const {
  std::optional<std::string> secret = this->secret();
  if (!secret || !password || password->size() != secret->size()) return false;
  unsigned char differ = 0;  // every byte compared: no early exit to time
  for (size_t i = 0; i < secret->size(); ++i)
    differ |= static_cast<unsigned char>((*secret)[i] ^ (*password)[i]);
  return differ == 0;
}

void Cluster::Heartbeat() {
  if (stopped_) return;
  if (commands_->connected()) {
    LoadSecret();
    auto ignore = [](absl::StatusOr<RedisReply>) {};
    commands_->Command(
        {"HSET", keys_.Node(node_), "address", advertise_, "routes-version", RoutesVersion()},
        ignore);
    commands_->Command({"PEXPIRE", keys_.Node(node_), std::to_string(2 * config_.node_timeout_ms)},
                       ignore);
    commands_->Command(name_.Command(), [this](absl::StatusOr<RedisReply> r) { name_.Replied(r); });
    commands_->Command(state::HeartbeatCommand(keys_.Nodes(), node_,
                                               std::chrono::milliseconds(config_.node_timeout_ms),
                                               state::Fence{keys_.Adoption(node_), name_.run()}),
                       [this](absl::StatusOr<RedisReply> r) {
                         if (!r.ok() || stopped_) return;
                         if (r->type == RedisReply::Type::kString) Fenced(r->str);
                         // Each live peer's address and routes version, then the peers as a whole.
                         auto live = std::make_shared<std::vector<LivePeer>>();
                         auto waiting = std::make_shared<size_t>(0);
                         // A read that failed says nothing about its peer: the round is dropped,
                         // not taken for the peer's departure (its routes withdrawn, its
                         // sessions adopted while it lives).
                         auto failed = std::make_shared<bool>(false);
                         for (const RedisReply& e : r->elements) {
                           if (e.str != node_) ++*waiting;
                         }
                         if (*waiting == 0) return OnLivePeers({});
                         for (const RedisReply& e : r->elements) {
                           if (e.str == node_) continue;
                           std::string name = e.str;
                           commands_->Command(
                               {"HMGET", keys_.Node(name), "address", "routes-version"},
                               [this, live, waiting, failed, name](absl::StatusOr<RedisReply> a) {
                                 if (!a.ok()) {
                                   *failed = true;
                                 } else if (a->elements.size() == 2 && !a->elements[0].nil()) {
                                   live->push_back({name, a->elements[0].str, a->elements[1].str});
                                 }
                                 if (--*waiting == 0 && !*failed && !stopped_) {
                                   OnLivePeers(std::move(*live));
                                 }
                               });
                         }
                       });
    if (resync_after_grace_ && std::chrono::steady_clock::now() - redis_since_ >= ReturnGrace()) {
      resync_after_grace_ = false;
      Resync(/*all=*/true);
    }
    if (++ticks_ % 10 == 0) {
      Resync(/*all=*/false);
      LearnClock();  // the host's clock may have been stepped
    }
  }
  heartbeat_.expires_after(std::chrono::milliseconds(config_.heartbeat_ms));
  heartbeat_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Heartbeat();
  });
}

void Cluster::Fenced(const std::string& fence) {
  std::string_view adopter(fence);
  adopter.remove_prefix(std::min(adopter.size(), name_.run().size() + 1));
  spdlog::critical(
      "cluster: node {} was taken for gone (silent for over {} ms) and {} adopted its sessions; "
      "exiting with status {} to be restarted clean",
      node_, config_.node_timeout_ms, adopter, kFencedExitStatus);
  spdlog::default_logger()->flush();
  // No shutdown: it would write records and publish wills that are the adopter's now.
  std::_Exit(kFencedExitStatus);
}

bool Cluster::ready() const {
  return peer_rounds_ >= 2 || std::chrono::steady_clock::now() - started_at_ >= Grace();
}

void Cluster::OnLivePeers(std::vector<LivePeer> live) {
  std::map<std::string, Peer> next;
  for (const auto& [name, address, routes_version] : live) {
    absl::StatusOr<base::HostPort> hp = base::ParseHostPort(address);
    boost::system::error_code ec;
    asio::ip::address ip = hp.ok() ? asio::ip::make_address(hp->host, ec) : asio::ip::address();
    if (!hp.ok() || ec) {
      spdlog::warn("cluster: node {} announces an address that does not parse: {}", name, address);
      continue;
    }
    uint32_t index = IndexOf(name);
    next.emplace(name, Peer{index, name, {ip, hp->port}});
    route_versions_[index].seen = routes_version;
  }
  // Just after Redis came back, a peer missing from the live set may only not have beaten
  // since: every node's heartbeats stopped with Redis, and its client may still be waiting to
  // reconnect. It stays, its link and routes with it (what the link carries was acknowledged to
  // publishers), until the grace has passed with heartbeats going; one really gone leaves then.
  // Otherwise a peer leaves once missing from kMissingRounds rounds in a row: taken for gone, it
  // would find its sessions adopted and exit (Fenced).
  bool returning = std::chrono::steady_clock::now() - redis_since_ < ReturnGrace();
  for (const auto& [name, p] : peers_) {
    if (next.contains(name)) {
      missing_.erase(name);
    } else if (returning || ++missing_[name] < kMissingRounds) {
      next.emplace(name, p);
    } else {
      missing_.erase(name);  // leaves this round
    }
  }
  bool changed = next.size() != peers_.size();
  for (const auto& [name, p] : next) {
    auto old = peers_.find(name);
    if (old == peers_.end() || old->second.address != p.address) changed = true;
  }
  std::vector<RemoteRouteChange> gone;
  for (const auto& [name, p] : peers_) {
    if (next.contains(name)) continue;
    spdlog::info("cluster: node {} left", name);
    const std::string& version = route_versions_[p.index].seen;
    sessions_->NodeLeft(name, version.substr(0, version.find('.')));
    for (const auto& [field, count] : known_routes_[p.index])
      gone.push_back({p.index, field, 0});
    known_routes_.erase(p.index);
    route_versions_.erase(p.index);
    route_events_.erase(p.index);
  }
  std::vector<std::string> joined;
  for (const auto& [name, p] : next) {
    if (!peers_.contains(name)) joined.push_back(name);
  }
  peers_ = std::move(next);
  if (changed) PushPeers();
  if (!gone.empty()) PushRoutes(std::move(gone));
  for (const std::string& name : joined)
    spdlog::info("cluster: node {} joined", name);
  if (!joined.empty()) Resync(/*all=*/true);
  if (peer_rounds_ < 2 && ++peer_rounds_ == 2) {
    spdlog::info("cluster: node {} in the cluster with {} peers", node_, peers_.size());
  }
}

void Cluster::Resync(bool all) {
  for (const auto& [name, p] : peers_) {
    uint32_t index = p.index;
    // Every live peer has its entry (OnLivePeers). One that writes no version (an older build)
    // is read every time.
    const RouteVersions& versions = route_versions_[index];
    if (!all && !versions.seen.empty() && versions.seen == versions.synced) continue;
    std::string version = versions.seen;
    RouteEvents& events = route_events_[index];
    ++events.reads;
    uint64_t events_before = events.heard;
    // The version read before the hash: a change between the two is read now and again later.
    commands_->Command({"HGETALL", keys_.Routes(name)},
                       [this, index, version, events_before](absl::StatusOr<RedisReply> r) {
                         // A peer that left meanwhile keeps no routes here: its reply is stale.
                         auto v = route_versions_.find(index);
                         if (v == route_versions_.end() || stopped_) return;
                         RouteEvents& events = route_events_[index];
                         absl::Cleanup done = [&events] {
                           // (A read from before the peer left and joined again finds none.)
                           if (events.reads > 0 && --events.reads == 0) events.last.clear();
                         };
                         if (!r.ok()) return;
                         v->second.synced = version;
                         absl::flat_hash_map<std::string, uint32_t> now;
                         for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
                           now[r->elements[i].str] = ParseCount(r->elements[i + 1].str);
                         }
                         auto& known = known_routes_[index];
                         // Fields an event changed since the read went out: the event is as new
                         // as the read, or newer.
                         for (const auto& [field, at] : events.last) {
                           if (at <= events_before) continue;
                           auto k = known.find(field);
                           if (k == known.end()) {
                             now.erase(field);
                           } else {
                             now[field] = k->second;
                           }
                         }
                         std::vector<RemoteRouteChange> changes;
                         for (const auto& [field, count] : now) {
                           auto k = known.find(field);
                           if (k == known.end() || k->second != count)
                             changes.push_back({index, field, count});
                         }
                         // Just after Redis returned (empty, if it restarted), a peer may not have
                         // written its routes back yet: a read then adds, it does not withdraw.
                         // One read of every peer after the grace withdraws what is gone.
                         bool settling =
                             std::chrono::steady_clock::now() - redis_since_ < ReturnGrace();
                         for (const auto& [field, count] : known) {
                           if (now.contains(field)) continue;
                           if (settling) {
                             now.emplace(field, count);
                           } else {
                             changes.push_back({index, field, 0});
                           }
                         }
                         known = std::move(now);
                         if (!changes.empty()) PushRoutes(std::move(changes));
                       });
  }
}

void Cluster::OnRouteEvent(std::string_view message) {
  // "NODE\tFIELD\tCOUNT"
  size_t a = message.find('\t');
  size_t b = message.rfind('\t');
  if (a == std::string_view::npos || b == a) return;
  std::string name(message.substr(0, a));
  if (name == node_) return;
  auto peer = peers_.find(name);
  if (peer == peers_.end()) return;  // not live yet: the resync when it joins reads its routes
  std::string field(message.substr(a + 1, b - a - 1));
  uint32_t count = ParseCount(std::string(message.substr(b + 1)));
  RouteEvents& events = route_events_[peer->second.index];
  ++events.heard;
  if (events.reads > 0) events.last[field] = events.heard;
  auto& known = known_routes_[peer->second.index];
  if (count == 0) {
    known.erase(field);
  } else {
    known[field] = count;
  }
  PushRoutes({{peer->second.index, std::move(field), count}});
}

void Cluster::PushRoutes(std::vector<RemoteRouteChange> changes) {
  auto shared = std::make_shared<const std::vector<RemoteRouteChange>>(std::move(changes));
  for (size_t i = 0; i < broker_.shard_count(); ++i) {
    Shard& shard = broker_.shard(i);
    asio::post(shard.io(), [&shard, shared] { shard.ApplyRemoteRoutes(*shared); });
  }
}

void Cluster::PushPeers() {
  std::vector<Peer> peers;
  for (const auto& [name, p] : peers_)
    peers.push_back(p);
  auto shared = std::make_shared<const std::vector<Peer>>(std::move(peers));
  for (size_t i = 0; i < broker_.shard_count(); ++i) {
    Shard& shard = broker_.shard(i);
    asio::post(shard.io(), [&shard, shared] { shard.SetPeers(*shared); });
  }
}

void Cluster::LocalRoutes(const std::vector<std::pair<std::string, int>>& deltas,
                          std::function<void()> done) {
  for (const auto& [field, delta] : deltas)
    LocalRoute(field, delta);
  // Replies come in order: the PING's comes after those of every announcement above. Even with
  // nothing to announce, the round trip keeps a connection's SUBACKs in the order of its
  // SUBSCRIBEs. Without Redis the call fails at once.
  commands_->Command({"PING"}, [done = std::move(done)](absl::StatusOr<RedisReply>) { done(); });
}

void Cluster::LocalRoute(const std::string& field, int delta) {
  uint32_t& count = local_routes_[field];
  uint32_t before = count;
  count = static_cast<uint32_t>(static_cast<int64_t>(count) + delta);
  uint32_t after = count;
  if (after == 0) local_routes_.erase(field);
  // A non-shared route matters only when it appears or goes; a shared one by its member count,
  // which spreads the group's messages over the nodes.
  bool announce = IsShared(field) ? before != after : (before == 0) != (after == 0);
  if (!announce || stopped_) return;
  auto ignore = [](absl::StatusOr<RedisReply>) {};
  std::string value = IsShared(field) ? std::to_string(after) : std::string(after > 0 ? "1" : "0");
  if (after > 0) {
    commands_->Command({"HSET", keys_.Routes(node_), field, value}, ignore);
  } else {
    commands_->Command({"HDEL", keys_.Routes(node_), field}, ignore);
  }
  RoutesChanged();
  commands_->Command({"PUBLISH", keys_.RouteEvents(), node_ + "\t" + field + "\t" + value}, ignore);
}

void Cluster::RoutesChanged() {
  ++routes_changes_;
  commands_->Command({"HSET", keys_.Node(node_), "routes-version", RoutesVersion()},
                     [](absl::StatusOr<RedisReply>) {});
}

std::string Cluster::RoutesVersion() const {
  return fmt::format("{}.{}", name_.run(), routes_changes_);
}

void Cluster::RetainedChanged(const MessagePtr& message) {
  auto ignore = [](absl::StatusOr<RedisReply>) {};
  if (message->payload.empty()) {
    commands_->Command({"HDEL", keys_.Retained(), message->topic}, ignore);
    return;
  }
  commands_->Command(
      {"HSET", keys_.Retained(), message->topic, EncodeMessage(*message, Clock::now())}, ignore);
}

void Cluster::RetainedExpired(const std::string& topic) {
  commands_->Command({"EVAL", kDeleteIfExpired, "1", keys_.Retained(), topic,
                      std::to_string(kExpirySlack.count())},
                     [](absl::StatusOr<RedisReply>) {});
}

void Cluster::LearnClock() {
  int64_t sent = HostClockMillis();
  commands_->Command({"TIME"}, [sent](absl::StatusOr<RedisReply> r) {
    if (!r.ok() || r->elements.size() != 2) return;
    int64_t seconds = 0, micros = 0;
    const std::string& s = r->elements[0].str;
    const std::string& us = r->elements[1].str;
    std::from_chars(s.data(), s.data() + s.size(), seconds);
    std::from_chars(us.data(), us.data() + us.size(), micros);
    // Redis read its clock about halfway through the round trip.
    int64_t host = sent + (HostClockMillis() - sent) / 2;
    SetWallClockOffset(std::chrono::milliseconds(seconds * 1000 + micros / 1000 - host));
  });
}

void Cluster::LoadRetained() {
  commands_->Command({"HGETALL", keys_.Retained()}, [this](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return;
    size_t loaded = 0;
    Clock::time_point now = Clock::now();
    for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      const std::string& topic = r->elements[i].str;
      const std::string& bytes = r->elements[i + 1].str;
      absl::StatusOr<MessagePtr> m = DecodeMessage(bytes, now);
      if (!m.ok()) {
        spdlog::warn("cluster: retained message of {} unreadable: {}", topic, m.status().message());
        continue;
      }
      if ((*m)->expired(now)) {
        // Its time ran out while no node held it: nobody may receive it now (§3.3.2.3.3).
        RetainedExpired(topic);
        continue;
      }
      if ((*m)->expires_at && IsIntervalFormat(bytes)) {
        // Stored by a build before expiry times were: its interval would start afresh at every
        // load. Stored again with the time it expires, unless a node set the topic meanwhile.
        commands_->Command(
            state::ReplaceFieldCommand(keys_.Retained(), topic, bytes, EncodeMessage(**m, now)),
            [](absl::StatusOr<RedisReply>) {});
      }
      broker_.RetainLocal(*m);
      ++loaded;
    }
    if (loaded > 0) spdlog::info("cluster: {} retained messages loaded", loaded);
  });
}

}  // namespace backend
