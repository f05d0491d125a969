// Shard: sessions, routing and cross-shard delivery.
#include "backend/shard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "backend/broker.h"
#include "backend/connection.h"
#include "backend/graceful_close.h"
#include "backend/handshake.h"
#include "backend/session_codec.h"
#include "base/absl_format.h"
#include "mqtt/encoder.h"
#include "mqtt/topic.h"
#include "net/listen.h"

namespace backend {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// A moved session's old node waits this long for the new node's "taken" before it withdraws
// its routes anyway (the new node died, or the event was lost) ...
constexpr std::chrono::seconds kMoveWait{5};
// ... and redirects this long after withdrawing them what other nodes sent before they heard.
constexpr std::chrono::seconds kMoveGrace{2};

// A record is written whole again once the subscription changes appended to it add up to more
// than its size or than this, whichever is larger.
constexpr size_t kMinRecordRewrite = 4096;

// The index of a node that forwarded a message before this shard knew of it.
constexpr uint32_t kUnknownNode = UINT32_MAX;

// The cluster's name for the route of a subscription: its filter, or "$share/GROUP/FILTER".
std::string RouteField(const RouteChange& c) {
  return c.group.empty() ? c.filter : "$share/" + c.group + "/" + c.filter;
}

}  // namespace

// A session with what the shard keeps beside it: its connection while it has one, and the will
// and expiry that wait while it has none.
struct Shard::SessionSlot {
  SessionSlot(std::string client_id, uint64_t id, size_t max_queued, asio::io_context& io)
      : session(std::move(client_id), id, max_queued), timer(io) {}
  Session session;
  Connection* connection = nullptr;
  uint32_t expiry_s = 0;           // the session expiry interval of its last connection
  bool recorded = false;           // this node has a record of it in Redis
  size_t record_bytes = 0;         // of the record as last written whole
  size_t appended_bytes = 0;       // of subscription changes appended to it since
  uint64_t record_generation = 0;  // counts whole writes
  std::optional<mqtt::Will> will;  // waiting for its delay
  Clock::time_point will_at = Clock::time_point::max();
  Clock::time_point expires_at = Clock::time_point::max();
  asio::steady_timer timer;
};

// A session handed over to another node, seen from the node it left (Shard::StartMove).
struct Shard::Move {
  explicit Move(asio::io_context& io) : timer(io) {}
  uint64_t session_id = 0;
  uint32_t node = 0;
  std::vector<RouteChange> removals;  // its subscriptions, still in every replica
  bool withdrawn = false;             // their routes withdrawn from the cluster
  asio::steady_timer timer;           // kMoveWait, then kMoveGrace
};

Shard::Shard(Broker& broker, uint32_t index, asio::io_context& io)
    : broker_(broker),
      index_(index),
      io_(io),
      acceptor_(io),
      accept_retry_(io),
      shutdown_timer_(io),
      record_retry_(io) {
  read_scratch_.resize(64 * 1024);
}

Shard::~Shard() = default;

const BrokerConfig& Shard::config() const {
  return broker_.config();
}

// ---- Accepting --------------------------------------------------------------------------------

absl::Status Shard::Listen(const tcp::endpoint& endpoint) {
  absl::StatusOr<tcp::acceptor> acceptor = net::Listen(io_, endpoint, /*reuse_port=*/true);
  if (!acceptor.ok()) return acceptor.status();
  acceptor_ = std::move(*acceptor);
  Accept();
  return absl::OkStatus();
}

uint16_t Shard::port() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void Shard::StopAccepting() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
}

void Shard::Accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors, typically: wait a little instead of spinning on the error.
      spdlog::warn("accept: {}", ec.message());
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) Accept();
      });
      return;
    }
    metrics_.connections_accepted.Add();
    net::SetNoDelay(socket);
    StartHandshake(*this, std::move(socket), broker_.TrackSocket());
    Accept();
  });
}

void Shard::Adopt(ConnectionSeed seed) {
  boost::system::error_code ec;
  tcp::socket socket(io_);
  socket.assign(seed.protocol, seed.native_socket, ec);
  if (ec) {
    spdlog::error("adopting a connection: {}", ec.message());
    return;
  }
  if (stopping_) {
    // Its handshake finished after this shard disconnected everyone: a connection started now
    // would hold the shutdown up until its deadline.
    OutBuffer refusal;
    mqtt::Encode(mqtt::Connack{.reason = mqtt::ReasonCode::kServerUnavailable},
                 seed.connect.version, refusal.bytes());
    CloseGracefully(std::move(socket), std::move(refusal), std::move(seed.token));
    return;
  }
  std::make_shared<Connection>(*this, std::move(socket), std::move(seed))->Start();
}

// ---- Sessions ---------------------------------------------------------------------------------

Shard::Attached Shard::Attach(Connection& connection, const mqtt::Connect& connect,
                              uint32_t expiry_s) {
  SessionSlot* slot = nullptr;
  if (auto it = by_client_id_.find(connect.client_id); it != by_client_id_.end()) {
    slot = it->second;
  }
  bool present = slot != nullptr && TakeOver(*slot, connect.clean_start);
  if (slot != nullptr && !present) EndSession(*slot, /*id_stays=*/true);
  if (!present) slot = &NewSlot(connect.client_id);
  slot->connection = &connection;
  slot->expiry_s = expiry_s;
  // Connected again: the record goes back to subscriptions only (what was queued is in memory
  // now, on its way to the client), and the will of this connection, for the node that adopts
  // the session should this one die.
  if (Recordable(*slot)) {
    if (slot->recorded || !slot->session.subscriptions().empty() || connection.will()) {
      Record(*slot, /*offline=*/false);
    }
  } else if (slot->recorded) {
    // Resumed by a connection that it will not outlive (expiry 0): nothing of it is worth
    // keeping, least of all the will its last connection left, which this one cancelled.
    slot->recorded = false;
    ToCluster([client_id = slot->session.client_id()](ClusterSessions& sessions) {
      sessions.Ended(client_id, /*recorded=*/true, /*disown=*/false);
    });
  }
  return {&slot->session, present};
}

void Shard::SubscriptionsChanged(Session& session, const std::vector<RouteChange>& routes) {
  SessionSlot* slot = FindSlot(session.id());
  if (slot == nullptr || slot->expiry_s == 0 || !Recordable(*slot)) return;
  std::vector<std::string> filters;
  for (const RouteChange& c : routes)
    filters.push_back(RouteField(c));
  std::string changes = EncodeSubscriptionChanges(session.subscriptions(), filters);
  // Appended while they add up to less than the record itself, then written whole again: each
  // change costs its own bytes, and the rewrites at most as many again.
  if (!slot->recorded || unsure_records_.contains(slot->session.id()) ||
      slot->appended_bytes + changes.size() > std::max(slot->record_bytes, kMinRecordRewrite)) {
    Record(*slot, /*offline=*/false);
    return;
  }
  size_t record_size = slot->record_bytes + slot->appended_bytes;
  slot->appended_bytes += changes.size();
  ToCluster([this, client_id = slot->session.client_id(), changes = std::move(changes), record_size,
             id = slot->session.id(),
             generation = slot->record_generation](ClusterSessions& sessions) {
    sessions.RecordChanges(client_id, changes, record_size,
                           WhenRecordLost(id, generation, /*rewrite=*/true));
  });
}

std::function<void()> Shard::WhenRecordLost(uint64_t session_id, uint64_t generation,
                                            bool rewrite) {
  return [this, session_id, generation, rewrite] {
    asio::post(io_, [=, this] { RecordLost(session_id, generation, rewrite); });
  };
}

void Shard::RecordLost(uint64_t session_id, uint64_t generation, bool rewrite) {
  SessionSlot* slot = FindSlot(session_id);
  if (slot == nullptr || !slot->recorded || slot->record_generation != generation) return;
  if (rewrite && slot->connection != nullptr && Recordable(*slot)) {
    Record(*slot, /*offline=*/false);
    return;
  }
  // Redis refused the write (out of memory, read-only) or did not answer: again a little later,
  // for a session may make no change that would rewrite it (and a client told its subscription
  // was taken expects it to survive a crash of this node).
  if (unsure_records_.empty()) ArmRecordRetry();
  unsure_records_.insert(session_id);
}

void Shard::ArmRecordRetry() {
  record_retry_.expires_after(kRecordRetry);
  record_retry_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    ToCluster([this](ClusterSessions& sessions) {
      asio::post(io_, [this, connected = sessions.connected()] {
        if (connected) {
          RewriteUnsureRecords();
        } else {
          ArmRecordRetry();
        }
      });
    });
  });
}

void Shard::RewriteUnsureRecords() {
  // Once the links are closed, this node is leaving: the survivors adopt what it recorded.
  if (links_closed_) return;
  absl::flat_hash_set<uint64_t> unsure;
  unsure.swap(unsure_records_);
  for (uint64_t id : unsure) {
    SessionSlot* slot = FindSlot(id);
    if (slot != nullptr && slot->recorded && Recordable(*slot)) {
      Record(*slot, /*offline=*/slot->connection == nullptr);
    }
  }
}

bool Shard::Recordable(const SessionSlot& slot) const {
  if (broker_.cluster() == nullptr || IsLinkClientId(slot.session.client_id())) return false;
  // A session that ends with its connection is recorded only for that connection's will, which
  // whoever adopts the session publishes should this node die with the connection.
  return slot.expiry_s > 0 || (slot.connection != nullptr && slot.connection->will());
}

void Shard::Record(SessionSlot& slot, bool offline) {
  SessionSnapshot s;
  Clock::time_point now = Clock::now();
  if (offline) {
    s = slot.session.Snapshot();
    if (slot.will) {
      s.will = SessionSnapshot::PendingWill{
          *slot.will, std::chrono::ceil<std::chrono::milliseconds>(slot.will_at - now)};
    }
  } else {
    if (slot.expiry_s > 0) s.subscriptions = slot.session.subscriptions();
    if (slot.connection != nullptr && slot.connection->will()) {
      const mqtt::Will& will = *slot.connection->will();
      s.will = SessionSnapshot::PendingWill{
          will, std::chrono::seconds(will.properties.will_delay_interval.value_or(0))};
    }
  }
  s.expiry_s = slot.expiry_s;
  std::optional<std::chrono::milliseconds> ttl;
  if (offline && slot.expires_at != Clock::time_point::max()) {
    ttl = std::chrono::ceil<std::chrono::milliseconds>(slot.expires_at - now);
  }
  std::string bytes = EncodeSnapshot(s, now);
  slot.recorded = true;
  slot.record_bytes = bytes.size();
  slot.appended_bytes = 0;
  unsure_records_.erase(slot.session.id());
  ToCluster([this, client_id = slot.session.client_id(), bytes = std::move(bytes), ttl,
             id = slot.session.id(),
             generation = ++slot.record_generation](ClusterSessions& sessions) {
    sessions.Record(client_id, bytes, ttl, WhenRecordLost(id, generation, /*rewrite=*/false));
  });
}

void Shard::ToCluster(std::function<void(ClusterSessions&)> f) {
  Cluster* cluster = broker_.cluster();
  if (cluster == nullptr) return;
  asio::post(cluster->control(), [cluster, f = std::move(f)] { f(cluster->sessions()); });
}

Shard::SessionSlot& Shard::NewSlot(const std::string& client_id) {
  // The session is here again: what this node still redirected for it would arrive twice.
  EndMove(client_id);
  uint64_t id = static_cast<uint64_t>(index_) << 48 | ++next_session_serial_;
  auto owned =
      std::make_unique<SessionSlot>(client_id, id, config().limits.max_queued_messages, io_);
  SessionSlot& slot = *owned;
  sessions_.emplace(id, std::move(owned));
  by_client_id_[client_id] = &slot;
  if (!IsLinkClientId(client_id)) metrics_.sessions.Add(1);
  return slot;
}

bool Shard::TakeOver(SessionSlot& slot, bool clean_start) {
  bool ended = clean_start;
  if (slot.connection != nullptr) {
    // The old connection goes; its will is published unless the session is resumed before the
    // will delay passes (§3.1.3.2.2) - which, here, is now. A session that lasts only as long as
    // its connection (expiry 0; 3.1.1 clean session 1) ends with it, so there is nothing to
    // resume, whatever the new CONNECT asks (§3.1.2.4, §3.1.2.11.2).
    Connection* old = slot.connection;
    slot.connection = nullptr;
    Connection::HandedOver handed = old->HandOver();
    ended = ended || handed.session_expiry_s == 0;
    bool delayed = handed.will && handed.will->properties.will_delay_interval.value_or(0) > 0;
    if (handed.will && (ended || !delayed)) PublishWill(slot.session.id(), std::move(*handed.will));
  }
  if (ended) return false;
  slot.will.reset();  // resumed before its will delay passed
  slot.will_at = slot.expires_at = Clock::time_point::max();
  slot.timer.cancel();
  return true;
}

// ---- Ownership across the cluster -------------------------------------------------------------

void Shard::Claim(const mqtt::Connect& connect, std::function<void()> then) {
  std::string client_id = connect.client_id;
  ++claiming_[client_id];
  auto resume = [this, client_id,
                 then = std::move(then)](std::optional<SessionSnapshot> session) mutable {
    auto finish = [this, client_id, then] {
      then();
      EndClaim(client_id);
    };
    if (session) {
      if (!PublishIfEnded(*session)) {
        return ImportSession(client_id, std::move(*session), std::move(finish));
      }
      EndLeftover(client_id);
    }
    finish();
  };
  ToCluster([this, client_id, clean = connect.clean_start,
             resume = std::move(resume)](ClusterSessions& sessions) mutable {
    sessions.Claim(
        client_id, clean, [this, resume](std::optional<SessionSnapshot> session) mutable {
          asio::post(io_, [resume, s = std::move(session)]() mutable { resume(std::move(s)); });
        });
  });
}

void Shard::EndClaim(const std::string& client_id) {
  auto it = claiming_.find(client_id);
  if (--it->second > 0) return;
  claiming_.erase(it);
  // Redirected here for a session that did not come (a clean start, or no answer in time).
  if (auto parked = parked_.extract(client_id); !parked.empty()) {
    metrics_.messages_unrouted.Add(static_cast<int64_t>(parked.mapped().size()));
  }
  auto waiting = waiting_releases_.extract(client_id);
  if (waiting.empty()) return;
  for (auto& release : waiting.mapped())
    release();
}

void Shard::ReleaseSession(const std::string& client_id, bool clean_start,
                           std::optional<uint32_t> claimer,
                           std::function<void(std::optional<std::string>)> done) {
  if (claiming_.contains(client_id)) {
    waiting_releases_[client_id].push_back([this, client_id, clean_start, claimer, done] {
      ReleaseSession(client_id, clean_start, claimer, done);
    });
    return;
  }
  auto it = by_client_id_.find(client_id);
  if (it == by_client_id_.end()) return done(std::nullopt);
  SessionSlot& slot = *it->second;
  std::optional<std::string> handed;
  std::optional<uint32_t> moved_to;
  if (TakeOver(slot, clean_start)) {
    SessionSnapshot s = slot.session.Snapshot();
    s.expiry_s = slot.expiry_s;
    handed = EncodeSnapshot(s, Clock::now());
    moved_to = claimer;
  }
  EndSession(slot, /*id_stays=*/false, moved_to);
  done(std::move(handed));
}

void Shard::StartMove(const std::string& client_id, uint64_t session_id, uint32_t node,
                      std::vector<RouteChange> removals) {
  EndMove(client_id);  // none expected: the session's NewSlot ended any
  Redirect redirect{.client_id = client_id, .node = node};
  OnEveryShard([session_id, redirect](Shard& s) { s.redirects_[session_id] = redirect; });
  auto move = std::make_unique<Move>(io_);
  move->session_id = session_id;
  move->node = node;
  move->removals = std::move(removals);
  Move& m = *move;
  moves_[client_id] = std::move(move);
  ArmMoveTimer(client_id, m, kMoveWait, &Shard::WithdrawMove);
}

void Shard::ArmMoveTimer(const std::string& client_id, Move& move, std::chrono::seconds after,
                         void (Shard::*then)(const std::string&)) {
  move.timer.expires_after(after);
  move.timer.async_wait(
      [this, client_id, id = move.session_id, then](const boost::system::error_code& ec) {
        auto m = moves_.find(client_id);
        if (!ec && m != moves_.end() && m->second->session_id == id) (this->*then)(client_id);
      });
}

void Shard::OnEveryShard(const std::function<void(Shard&)>& f) {
  for (size_t i = 0; i < broker_.shard_count(); ++i) {
    Shard& shard = broker_.shard(i);
    if (i == index_) {
      f(shard);
    } else {
      asio::post(shard.io(), [&shard, f] { f(shard); });
    }
  }
}

void Shard::MoveTaken(const std::string& client_id) {
  auto it = moves_.find(client_id);
  if (it == moves_.end()) return;
  // Posted behind the new node's routes, which the control thread pushed before this: each
  // replica knows them by the time it stops redirecting what it forwarded there itself.
  OnEveryShard([session_id = it->second->session_id](Shard& s) {
    if (auto r = s.redirects_.find(session_id); r != s.redirects_.end()) r->second.taken = true;
  });
  WithdrawMove(client_id);
}

void Shard::WithdrawMove(const std::string& client_id) {
  auto it = moves_.find(client_id);
  if (it == moves_.end() || it->second->withdrawn) return;
  Move& move = *it->second;
  move.withdrawn = true;
  std::vector<std::pair<std::string, int>> deltas;
  for (const RouteChange& c : move.removals)
    deltas.emplace_back(RouteField(c), -1);
  if (broker_.cluster() != nullptr) broker_.AnnounceRoutes(std::move(deltas), [] {});
  ArmMoveTimer(client_id, move, kMoveGrace, &Shard::EndMove);
}

void Shard::EndMove(const std::string& client_id) {
  auto it = moves_.find(client_id);
  if (it == moves_.end()) return;
  std::unique_ptr<Move> move = std::move(it->second);
  moves_.erase(it);
  uint64_t session_id = move->session_id;
  ChangeRoutes(
      std::move(move->removals), [] {}, /*announce=*/!move->withdrawn);
  // Behind the routes' removal on each shard: no match is left that would need it.
  OnEveryShard([session_id](Shard& s) { s.redirects_.erase(session_id); });
}

void Shard::ImportSession(const std::string& client_id, SessionSnapshot snapshot,
                          std::function<void()> then) {
  EndLeftover(client_id);
  SessionSlot& slot = NewSlot(client_id);
  slot.expiry_s = snapshot.expiry_s;
  // A will its node had not published: what was left of its delay when the record was written
  // (all of it if the record saw the client connected: its node died, and the connection with
  // it), from now. A claim attaches the client at once, which cancels it.
  if (std::optional<SessionSnapshot::PendingWill> will = std::exchange(snapshot.will, {})) {
    AwaitWill(slot, std::move(will->will), will->delay);
  }
  slot.session.Restore(std::move(snapshot));
  // Redirected here before it arrived: after its queue, before what its routes bring.
  if (auto parked = parked_.extract(client_id); !parked.empty()) {
    for (Delivery& d : parked.mapped())
      Deliver(slot.session.id(), std::move(d));
  }
  std::vector<RouteChange> additions;
  for (const auto& [full, record] : slot.session.subscriptions()) {
    additions.push_back(RouteFor(full, record, slot.session.id(), /*add=*/true));
  }
  metrics_.subscriptions.Add(static_cast<int64_t>(additions.size()));
  // Routed everywhere before the client hears session present, as a SUBACK would be.
  ChangeRoutes(std::move(additions), std::move(then));
  // Right behind the announcement of its routes: the node it came from stops redirecting.
  ToCluster([client_id](ClusterSessions& sessions) { sessions.Imported(client_id); });
}

void Shard::Detach(Session& session, std::optional<mqtt::Will> will, uint32_t will_delay_s,
                   uint32_t expiry_s) {
  SessionSlot* slot = FindSlot(session.id());
  slot->connection = nullptr;
  slot->expiry_s = expiry_s;
  Clock::time_point now = Clock::now();
  if (expiry_s != 0xFFFFFFFF) slot->expires_at = now + std::chrono::seconds(expiry_s);
  // The will waits for its delay or the end of the session, whichever comes first.
  if (will) AwaitWill(*slot, std::move(*will), std::chrono::seconds(will_delay_s));
  if (expiry_s == 0) return EndSession(*slot);
  if (Recordable(*slot) && (slot->recorded || slot->will || !session.subscriptions().empty() ||
                            session.queued() > 0 || session.inflight() > 0)) {
    Record(*slot, /*offline=*/true);
  }
  ArmSessionTimer(*slot);
}

void Shard::ArmSessionTimer(SessionSlot& slot) {
  Clock::time_point at = std::min(slot.will_at, slot.expires_at);
  if (at == Clock::time_point::max()) return;
  slot.timer.expires_at(at);
  uint64_t id = slot.session.id();
  slot.timer.async_wait([this, id](const boost::system::error_code& ec) {
    if (ec) return;
    SessionSlot* s = FindSlot(id);
    // Shutting down: the session and its will are in Redis for the node that adopts them.
    if (s == nullptr || s->connection != nullptr || stopping_) return;
    Clock::time_point now = Clock::now();
    if (now >= s->expires_at) return EndSession(*s);  // with its will, if still waiting
    if (s->will && now >= s->will_at) {
      mqtt::Will will = std::move(*s->will);
      s->will.reset();
      s->will_at = Clock::time_point::max();
      PublishWill(s->session.id(), std::move(will));
      if (s->recorded) Record(*s, /*offline=*/true);  // so that no adopter publishes it again
    }
    ArmSessionTimer(*s);
  });
}

void Shard::EndLeftover(const std::string& client_id) {
  auto it = by_client_id_.find(client_id);
  if (it == by_client_id_.end()) return;
  // Left over from before another node owned the id: what that node had is newer.
  TakeOver(*it->second, /*clean_start=*/true);
  EndSession(*it->second, /*id_stays=*/true);
}

void Shard::AdoptSession(const std::string& client_id, SessionSnapshot snapshot) {
  if (PublishIfEnded(snapshot)) {
    // Nothing to keep: the id the adoption took goes too, unless a client of it is here.
    if (!by_client_id_.contains(client_id) && !claiming_.contains(client_id)) {
      ToCluster([client_id](ClusterSessions& sessions) {
        sessions.Ended(client_id, /*recorded=*/false, /*disown=*/true);
      });
    }
    return;
  }
  // A client that connected here meanwhile has the newer session.
  if (by_client_id_.contains(client_id)) return;
  ImportSession(client_id, std::move(snapshot), [this, client_id] {
    auto it = by_client_id_.find(client_id);
    if (it == by_client_id_.end() || it->second->connection != nullptr) return;
    SessionSlot& slot = *it->second;
    // Its expiry starts again here: the interval it had, from now.
    if (slot.expiry_s != 0xFFFFFFFF) {
      slot.expires_at = Clock::now() + std::chrono::seconds(slot.expiry_s);
    }
    ArmSessionTimer(slot);
    Record(slot, /*offline=*/true);
  });
}

void Shard::EndSession(SessionSlot& slot, bool id_stays, std::optional<uint32_t> moved_to) {
  if (slot.will) PublishWill(slot.session.id(), std::move(*slot.will));
  std::vector<RouteChange> removals;
  for (const auto& [full, record] : slot.session.subscriptions()) {
    removals.push_back(RouteFor(full, record, slot.session.id(), /*add=*/false));
  }
  metrics_.subscriptions.Add(-static_cast<int64_t>(removals.size()));
  if (moved_to && !removals.empty()) {
    StartMove(slot.session.client_id(), slot.session.id(), *moved_to, std::move(removals));
  } else if (!removals.empty()) {
    ChangeRoutes(std::move(removals), [] {});
  }
  if (!IsLinkClientId(slot.session.client_id())) metrics_.sessions.Add(-1);
  ToCluster([client_id = slot.session.client_id(), recorded = slot.recorded,
             id_stays](ClusterSessions& sessions) {
    sessions.Ended(client_id, recorded, /*disown=*/!id_stays);
  });
  by_client_id_.erase(slot.session.client_id());
  sessions_.erase(slot.session.id());  // destroys the slot
}

RouteChange Shard::RouteFor(const std::string& full, const SubscriptionRecord& record,
                            uint64_t session_id, bool add) const {
  std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(full);
  return {.add = add,
          .filter = std::string(shared ? shared->filter : std::string_view(full)),
          .group = shared ? std::string(shared->group) : std::string(),
          .subscriber = {.session_id = session_id,
                         .shard = index_,
                         .options = record.options,
                         .subscription_id = record.subscription_id}};
}

bool Shard::PublishIfEnded(SessionSnapshot& snapshot) {
  if (snapshot.expiry_s > 0) return false;
  if (snapshot.will) PublishWill(/*publisher_session=*/0, std::move(snapshot.will->will));
  return true;
}

void Shard::AwaitWill(SessionSlot& slot, mqtt::Will will, std::chrono::milliseconds delay) {
  if (delay.count() <= 0) return PublishWill(slot.session.id(), std::move(will));
  slot.will = std::move(will);
  slot.will_at = Clock::now() + delay;
}

void Shard::PublishWill(uint64_t publisher_session, mqtt::Will will) {
  if (!broker_.access().MayPublish(will.topic)) {
    metrics_.Drop(DropReason::kNotAuthorized);
    return;
  }
  MessagePtr message =
      MakeMessage(std::move(will.topic), std::move(will.payload), will.qos, will.retain,
                  std::move(will.properties), publisher_session, Clock::now());
  if (message->retain) broker_.Retain(message);
  Publish(message);
}

Shard::SessionSlot* Shard::FindSlot(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

// ---- Routing ----------------------------------------------------------------------------------

Backpressure* Shard::Publish(const MessagePtr& message, const std::shared_ptr<AckWait>& wait) {
  matches_.clear();
  plans_.clear();
  local_groups_.clear();
  remote_groups_.clear();
  routes_.Match(
      message->topic, [this](const Subscriber& s) { matches_.push_back(s); },
      [this](SubscriptionTrie::SharedGroup& g) { local_groups_.push_back(&g); });
  if (remote_routes_.size() > 0) {
    remote_routes_.Match(
        message->topic, [this](uint32_t node) { plans_[node].normal = true; },
        [this](SubscriptionTrie::SharedGroup& g) { remote_groups_.push_back(&g); });
  }
  // Each shared subscription delivers to one member, cluster-wide (§4.8.2).
  for (SubscriptionTrie::SharedGroup* local : local_groups_) {
    SubscriptionTrie::SharedGroup* remote = nullptr;
    for (auto& r : remote_groups_) {
      if (r != nullptr && r->group() == local->group() && r->filter() == local->filter()) {
        remote = std::exchange(r, nullptr);
        break;
      }
    }
    ChooseShared(local, remote);
  }
  for (SubscriptionTrie::SharedGroup* remote : remote_groups_) {
    if (remote != nullptr) ChooseShared(nullptr, remote);
  }
  // Every node keeps every retained message.
  if (message->retain) {
    for (const auto& [node, link] : links_)
      plans_[node].store_retained = true;
  }
  Backpressure* congested = nullptr;
  for (auto& [node, spec] : plans_) {
    auto link = links_.find(node);
    if (link == links_.end()) continue;  // a route of a node this shard has no link to yet
    bool acked = wait != nullptr && message->qos != mqtt::QoS::k0;
    if (acked) wait->Expect();
    link->second->Forward(message, std::move(spec), acked ? wait : nullptr);
    metrics_.messages_forwarded.Add();
    if (link->second->congested()) congested = link->second.get();
  }
  if (matches_.empty() && plans_.empty()) {
    metrics_.messages_unrouted.Add();
    return congested;
  }
  Backpressure* shard = DeliverMatches(message, /*local=*/true, wait);
  return shard != nullptr ? shard : congested;
}

void Shard::ChooseShared(SubscriptionTrie::SharedGroup* local,
                         SubscriptionTrie::SharedGroup* remote) {
  size_t local_members = local != nullptr ? local->members().size() : 0;
  size_t total = local_members;
  if (remote != nullptr) {
    for (const Subscriber& node : remote->members())
      total += node.subscription_id;
  }
  if (total == 0) return;
  // The local group keeps the round robin; without local members, the remote one does (both
  // are this shard's own replicas).
  size_t position = (local != nullptr ? local : remote)->Turn() % total;
  if (position < local_members) {
    Subscriber chosen = local->members()[position];
    chosen.shared = true;
    matches_.push_back(chosen);
    return;
  }
  position -= local_members;
  for (const Subscriber& node : remote->members()) {
    if (position < node.subscription_id) {
      plans_[static_cast<uint32_t>(node.session_id)].shared.emplace_back(
          std::string(remote->group()), std::string(remote->filter()));
      return;
    }
    position -= node.subscription_id;
  }
}

Backpressure* Shard::PublishForwarded(const MessagePtr& message, ForwardSpec spec,
                                      std::string_view from) {
  metrics_.messages_received_from_nodes.Add();
  if (spec.target) {
    auto peer = peer_indices_.find(from);
    // A node this shard does not know yet (it joined a moment ago) is no node a session moved to.
    uint32_t node = peer != peer_indices_.end() ? peer->second : kUnknownNode;
    ForwardTarget& t = *spec.target;
    Delivery d{.message = message,
               .qos = t.qos,
               .retain = t.retain,
               .subscription_ids = std::move(t.subscription_ids)};
    Shard& home = broker_.HomeShard(t.client_id);
    if (&home == this) {
      DeliverTo(t.client_id, std::move(d), node);
      return nullptr;
    }
    ShardQueue& queue = *queues_[home.index()];
    queue.Push({.client_id = std::move(t.client_id), .delivery = std::move(d), .from = node});
    ScheduleFlush();
    return queue.congested() ? &queue : nullptr;
  }
  matches_.clear();
  if (spec.normal) {
    routes_.Match(
        message->topic, [this](const Subscriber& s) { matches_.push_back(s); },
        [](SubscriptionTrie::SharedGroup&) {});  // the sending node chose for shared ones
  }
  for (const auto& [group, filter] : spec.shared) {
    if (SubscriptionTrie::SharedGroup* g = routes_.FindGroup(filter, group)) {
      if (!g->members().empty()) matches_.push_back(g->Pick());
    }
  }
  if (matches_.empty()) return nullptr;
  return DeliverMatches(message, /*local=*/false);
}

Backpressure* Shard::DeliverMatches(const MessagePtr& message, bool local,
                                    const std::shared_ptr<AckWait>& wait) {
  Backpressure* congested = nullptr;
  // One delivery per session for its non-shared subscriptions, at the highest granted QoS and
  // with every matching subscription identifier (§3.3.4); a shared subscription delivers its own
  // copy (§4.8.2).
  std::stable_sort(matches_.begin(), matches_.end(), [](const Subscriber& a, const Subscriber& b) {
    return a.session_id < b.session_id;
  });
  auto route = [&](uint32_t shard, uint64_t session_id, Delivery d, bool shared) {
    if (!redirects_.empty()) {
      if (auto r = redirects_.find(session_id); r != redirects_.end()) {
        // Moved to another node. Once it is routed there, this shard's view has its routes
        // there (pushed before "taken"), and later ones wherever it goes next (announced before
        // the node it leaves withdraws its own): a publish of this node reaches its non-shared
        // subscriptions without this. What another node forwarded here is redirected all the
        // same, even from the new node: it may have been sent before the session got there.
        // Shared: this node chose the member.
        if (!(local && !shared && r->second.taken)) {
          NodeLink* link = SendOn(r->second, std::move(d), wait);
          // Only a client waits for a link: a link that waited for another could wait in a
          // circle of nodes, each not reading the next.
          if (link != nullptr && local) congested = link;
        }
        return;
      }
    }
    if (shard == index_) {
      Deliver(session_id, std::move(d));
    } else {
      ShardQueue& queue = *queues_[shard];
      queue.Push(session_id, std::move(d));
      if (queue.congested()) congested = &queue;
      ScheduleFlush();
    }
  };
  for (size_t i = 0; i < matches_.size();) {
    size_t end = i;
    Delivery merged{.message = message};
    bool any = false;
    for (; end < matches_.size() && matches_[end].session_id == matches_[i].session_id; ++end) {
      const Subscriber& s = matches_[end];
      mqtt::QoS qos = std::min(message->qos, s.options.qos);
      bool retain = message->retain && s.options.retain_as_published;
      if (s.shared) {
        Delivery d{.message = message, .qos = qos, .retain = retain};
        if (s.subscription_id != 0) d.subscription_ids.push_back(s.subscription_id);
        route(s.shard, s.session_id, std::move(d), /*shared=*/true);
        continue;
      }
      if (s.options.no_local && s.session_id == message->publisher_session) continue;
      merged.qos = any ? std::max(merged.qos, qos) : qos;
      merged.retain = merged.retain || retain;
      if (s.subscription_id != 0) merged.subscription_ids.push_back(s.subscription_id);
      any = true;
    }
    if (any) route(matches_[i].shard, matches_[i].session_id, std::move(merged), /*shared=*/false);
    i = end;
  }
  return congested;
}

void Shard::Deliver(uint64_t session_id, Delivery delivery) {
  SessionSlot* slot = FindSlot(session_id);
  if (slot == nullptr) {
    // It moved to another node while the message was on its way from another shard; or ended.
    if (auto r = redirects_.find(session_id); r != redirects_.end()) {
      SendOn(r->second, std::move(delivery));
    }
    return;
  }
  if (slot->connection != nullptr &&
      slot->session.queued() >= config().limits.max_queued_messages) {
    // A burst (many PUBLISH in one read, or one batch from another shard) fills the queue of a
    // connected client before the flush that would drain it. Make room the way the flush would,
    // into the write buffer, so a client that keeps up loses nothing to the burst; only a client
    // that does not read (full write buffer, closed window) loses messages to its queue bound.
    slot->connection->Drain();
    MarkDirty(*slot->connection);
  }
  if (slot->connection != nullptr) slot->connection->NoteLive(*delivery.message);
  std::optional<std::string> recorded;  // the delivery, for an offline session's record
  if (slot->connection == nullptr && slot->recorded) {
    recorded = EncodeDelivery(delivery, Clock::now());
  }
  switch (slot->session.Enqueue(std::move(delivery), slot->connection != nullptr)) {
    case Session::EnqueueResult::kQueued:
      if (slot->connection != nullptr) {
        MarkDirty(*slot->connection);
      } else if (recorded) {
        RecordQueued(*slot, std::move(*recorded));
      }
      break;
    case Session::EnqueueResult::kQueueFull:
      metrics_.Drop(DropReason::kQueueFull);
      break;
    case Session::EnqueueResult::kOfflineQos0:
      metrics_.Drop(DropReason::kOfflineQos0);
      break;
  }
}

void Shard::DeliverTo(const std::string& client_id, Delivery delivery, uint32_t from) {
  auto it = by_client_id_.find(client_id);
  if (it == by_client_id_.end() && claiming_.contains(client_id)) {
    // The session is on its way: into its queue as it arrives (ImportSession).
    std::vector<Delivery>& parked = parked_[client_id];
    if (parked.size() >= config().limits.max_queued_messages) {
      return metrics_.Drop(DropReason::kQueueFull);
    }
    parked.push_back(std::move(delivery));
    return;
  }
  if (it != by_client_id_.end()) {
    // Not to one that unsubscribed since it moved.
    Session& session = it->second->session;
    if (!session.Subscribed(delivery.message->topic)) return metrics_.messages_unrouted.Add();
    return Deliver(session.id(), std::move(delivery));
  }
  // Moved on again; never back where it came from (two moves pointing at each other, the
  // session at neither: its claim ended without it).
  if (auto m = moves_.find(client_id); m != moves_.end() && m->second->node != from) {
    SendOn({.client_id = client_id, .node = m->second->node}, std::move(delivery));
    return;
  }
  metrics_.messages_unrouted.Add();
}

NodeLink* Shard::SendOn(const Redirect& to, Delivery delivery,
                        const std::shared_ptr<AckWait>& wait) {
  auto link = links_.find(to.node);
  if (link == links_.end()) {
    metrics_.messages_unrouted.Add();  // the node left
    return nullptr;
  }
  ForwardSpec spec{.target =
                       ForwardTarget{.client_id = to.client_id,
                                     .qos = delivery.qos,
                                     .retain = delivery.retain,
                                     .subscription_ids = std::move(delivery.subscription_ids)}};
  // As Publish does: the publisher hears its acknowledgement once the node has taken it.
  bool acked = wait != nullptr && delivery.message->qos != mqtt::QoS::k0;
  if (acked) wait->Expect();
  link->second->Forward(delivery.message, std::move(spec), acked ? wait : nullptr);
  metrics_.messages_redirected.Add();
  return link->second->congested() ? link->second.get() : nullptr;
}

void Shard::RecordQueued(SessionSlot& slot, std::string delivery) {
  std::optional<std::chrono::milliseconds> ttl;
  if (slot.expires_at != Clock::time_point::max()) {
    ttl = std::chrono::ceil<std::chrono::milliseconds>(slot.expires_at - Clock::now());
  }
  // Lost, it is written with the whole record again (RecordLost).
  ToCluster([this, client_id = slot.session.client_id(), delivery = std::move(delivery), ttl,
             id = slot.session.id(),
             generation = slot.record_generation](ClusterSessions& sessions) {
    sessions.RecordQueued(client_id, delivery, ttl,
                          WhenRecordLost(id, generation, /*rewrite=*/false));
  });
}

void Shard::ReceiveDeliveries(ShardBatch batch) {
  for (auto& [session_id, delivery] : batch.deliveries)
    Deliver(session_id, std::move(delivery));
  for (ShardBatch::Targeted& t : batch.targeted)
    DeliverTo(t.client_id, std::move(t.delivery), t.from);
}

void Shard::ChangeRoutes(std::vector<RouteChange> changes, std::function<void()> done,
                         bool announce) {
  Cluster* cluster = announce ? broker_.cluster() : nullptr;
  std::vector<std::pair<std::string, int>> deltas;
  ApplyRouteChanges(changes, cluster != nullptr ? &deltas : nullptr);
  // `done` waits for every other shard's replica and, in a cluster, for Redis to have the
  // changes. With nothing to change, it still takes the round trips: it must come after the
  // `done` of earlier changes from the same connection that are still travelling, so that
  // SUBACKs and UNSUBACKs go out in the order of their requests.
  size_t waits = broker_.shard_count() - 1 + (cluster != nullptr ? 1 : 0);
  if (waits == 0) {
    done();
    return;
  }
  // Each wait reports back on this thread; the count of replies is touched here only.
  auto remaining = std::make_shared<size_t>(waits);
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  auto report = [this, remaining, shared_done] {
    asio::post(io_, [remaining, shared_done] {
      if (--*remaining == 0) (*shared_done)();
    });
  };
  if (cluster != nullptr) broker_.AnnounceRoutes(std::move(deltas), report);
  auto shared_changes = std::make_shared<const std::vector<RouteChange>>(std::move(changes));
  for (size_t i = 0; i < broker_.shard_count(); ++i) {
    if (i == index_) continue;
    Shard& other = broker_.shard(i);
    asio::post(other.io(), [&other, shared_changes, report] {
      other.ApplyRouteChanges(*shared_changes);
      report();
    });
  }
}

void Shard::ApplyRouteChanges(const std::vector<RouteChange>& changes,
                              std::vector<std::pair<std::string, int>>* deltas) {
  for (const RouteChange& c : changes) {
    bool changed = c.add ? routes_.Add(c.filter, c.group, c.subscriber)
                         : routes_.Remove(c.filter, c.group, c.subscriber.session_id);
    if (changed && deltas != nullptr) deltas->emplace_back(RouteField(c), c.add ? 1 : -1);
  }
}

void Shard::SetPeers(const std::vector<Peer>& peers) {
  if (links_closed_) return;  // shutting down: the peers pushed meanwhile are not linked again
  for (auto it = links_.begin(); it != links_.end();) {
    auto p = std::find_if(peers.begin(), peers.end(),
                          [&](const Peer& x) { return x.index == it->first; });
    if (p != peers.end() && p->address == it->second->address()) {
      ++it;
      continue;
    }
    // Gone from the cluster (or back at another address): what waited on it is released.
    it->second->Stop();
    if (p == peers.end()) remote_routes_.ClearNode(it->first);
    links_.erase(it++);
  }
  peer_indices_.clear();
  for (const Peer& p : peers) {
    peer_indices_[p.name] = p.index;
    if (links_.contains(p.index)) continue;
    auto link = std::make_shared<NodeLink>(*this, config().node, p.name, p.address,
                                           config().cluster.link_queue_bytes);
    link->Start();
    links_.emplace(p.index, std::move(link));
  }
}

void Shard::ApplyRemoteRoutes(const std::vector<RemoteRouteChange>& changes) {
  for (const RemoteRouteChange& c : changes)
    remote_routes_.Set(c.node, c.field, c.count);
}

// ---- Flushing ---------------------------------------------------------------------------------

void Shard::MarkDirty(Connection& connection) {
  if (connection.dirty) return;
  connection.dirty = true;
  dirty_.push_back(connection.shared_from_this());
  ScheduleFlush();
}

void Shard::MarkDirty(NodeLink& link) {
  if (link.dirty) return;
  link.dirty = true;
  dirty_links_.push_back(link.shared_from_this());
  ScheduleFlush();
}

void Shard::ScheduleFlush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  // After the handler that produced the work: everything it routed goes out in one batch per
  // shard and one write per connection.
  asio::post(io_, [this] { Flush(); });
}

void Shard::ConnectShards() {
  queues_.resize(broker_.shard_count());
  for (uint32_t i = 0; i < queues_.size(); ++i) {
    if (i != index_) {
      queues_[i] = std::make_unique<ShardQueue>(*this, broker_.shard(i), kShardQueueBytes);
    }
  }
}

size_t Shard::queued_for_other_shards() const {
  size_t bytes = 0;
  for (const std::unique_ptr<ShardQueue>& queue : queues_) {
    if (queue != nullptr) bytes += queue->in_transit();
  }
  return bytes;
}

void Shard::Flush() {
  flush_scheduled_ = false;
  for (const std::unique_ptr<ShardQueue>& queue : queues_) {
    if (queue != nullptr) queue->Flush();
  }
  // Links first: a QoS 1 publisher's acknowledgement waits for them.
  for (const std::shared_ptr<NodeLink>& link : std::exchange(dirty_links_, {})) {
    link->dirty = false;
    link->Pump();
  }
  // Swapped, not moved, so that both vectors keep their capacity from one flush to the next.
  flushing_.swap(dirty_);
  for (const std::shared_ptr<Connection>& c : flushing_) {
    c->dirty = false;
    c->Pump();
  }
  flushing_.clear();
}

void Shard::CloseClients(mqtt::ReasonCode reason) {
  StopAccepting();
  stopping_ = true;
  // The records of offline sessions say how long their wills still wait as of now, for the
  // node that adopts them (those of the clients closed below are written as they close).
  for (auto& [id, slot] : sessions_) {
    if (slot->connection == nullptr && slot->will && slot->recorded) {
      Record(*slot, /*offline=*/true);
    }
  }
  Disconnect(reason, /*links=*/false);
  // Each handshake unregisters itself once its aborted operations have completed; iterate a copy
  // all the same, so that no abort can change the set under the loop.
  std::vector<PendingSocket*> pending(pending_sockets_.begin(), pending_sockets_.end());
  for (PendingSocket* p : pending)
    p->Abort();
}

void Shard::CloseLinks(Clock::time_point deadline, std::function<void()> done) {
  bool idle = std::all_of(links_.begin(), links_.end(),
                          [](const auto& link) { return link.second->idle(); });
  if (idle || Clock::now() >= deadline) {
    SetPeers({});
    links_closed_ = true;
    return done();
  }
  shutdown_timer_.expires_after(std::chrono::milliseconds(10));
  shutdown_timer_.async_wait(
      [this, deadline, done = std::move(done)](const boost::system::error_code& ec) mutable {
        if (!ec) CloseLinks(deadline, std::move(done));
      });
}

void Shard::CloseNodeConnections(mqtt::ReasonCode reason) {
  Disconnect(reason, /*links=*/true);
}

void Shard::Disconnect(mqtt::ReasonCode reason, bool links) {
  std::vector<std::shared_ptr<Connection>> chosen;
  for (Connection* c : connections_) {
    if (c->is_node_link() == links) chosen.push_back(c->shared_from_this());
  }
  for (const auto& c : chosen)
    c->Disconnect(reason, /*publish_will=*/true);
}

}  // namespace backend
