// The setup coroutine of a client connection, on RawSockets: every wait is a wait for the
// worker's Poller to report readiness, raced against a deadline that cancels it.
#include "proxy/client_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <cstring>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/error.h"
#include "net/local_shortage.h"
#include "net/proxy_protocol.h"
#include "proxy/access_log.h"
#include "proxy/connack_reader.h"
#include "proxy/tunnel.h"
#include "proxy/worker.h"

namespace proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

namespace {

// Cancels a socket's waits when it passes. The state is shared with the timer's handler, which
// may run after the deadline object is gone: a timer that fired just before the object went
// (its handler already queued, so the cancel comes too late) must not cancel the socket's next
// wait, which belongs to another step.
class Deadline {
 public:
  Deadline(const asio::any_io_executor& executor, milliseconds after,
           const std::shared_ptr<RawSocket>& socket)
      : timer_(executor, after), state_(std::make_shared<State>()) {
    timer_.async_wait([state = state_, weak = std::weak_ptr<RawSocket>(socket)](
                          const boost::system::error_code& ec) {
      if (ec || state->gone) return;
      state->expired = true;
      if (auto s = weak.lock()) s->Cancel();
    });
  }
  ~Deadline() { state_->gone = true; }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  bool expired() const { return state_->expired; }

 private:
  struct State {
    bool expired = false;
    bool gone = false;
  };
  asio::steady_timer timer_;  // cancelled with the object
  std::shared_ptr<State> state_;
};

bool WouldBlock() {
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

// Writes all of `bytes`, waiting for writability as needed; false on an error or the deadline.
asio::awaitable<bool> SendAll(RawSocket& socket, std::string_view bytes, const Deadline& deadline) {
  while (!bytes.empty()) {
    ssize_t n = ::send(socket.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && !WouldBlock()) co_return false;
    socket.writable = false;
    if (co_await socket.Writable() || deadline.expired()) co_return false;
  }
  co_return true;
}

// The first packet of an mqtt listener's connection, and every byte read with it.
struct FirstPacket {
  std::string bytes;  // the CONNECT, and whatever came after it in the same reads
  size_t connect_bytes = 0;
  mqtt::Connect connect;
};

// The client left while its connection was being set up, having sent its CONNECT and nothing
// after it: it gave up waiting (and may be connecting again elsewhere). Its CONNECT alone would
// only make the broker take over the session of that new connection, and publish its will.
// HAProxy calls this abortonclose. A client that sent more (a PUBLISH, a DISCONNECT) and left
// without waiting for the CONNACK, as MQTT allows, is served.
bool LeftAfterConnect(const RawSocket& client, const FirstPacket& first) {
  if (client.failed) return true;  // reset: what it sent after the CONNECT is lost anyway
  if (!client.peer_closed || first.bytes.size() > first.connect_bytes) return false;
  int unread = 0;
  return ::ioctl(client.fd(), FIONREAD, &unread) == 0 && unread == 0;
}

// Answers a CONNECT with a refusing CONNACK in `version`'s encoding, then closes politely: the
// sending side first, and the rest once the client has closed too (or after a second), so that
// a reset does not destroy the answer before the client reads it.
asio::awaitable<void> Refuse(const std::shared_ptr<RawSocket>& client, mqtt::ReasonCode reason,
                             mqtt::Version version) {
  std::string out;
  mqtt::Encode(mqtt::Connack{.reason = reason}, version, out);
  Deadline deadline(co_await asio::this_coro::executor, std::chrono::seconds(1), client);
  if (!co_await SendAll(*client, out, deadline)) co_return;
  ::shutdown(client->fd(), SHUT_WR);
  // Bounded: the deadline ends only a wait, and a client that keeps sending never lets this loop
  // wait; without a bound it would hold the worker's thread for as long as it sends.
  char discard[4096];
  for (size_t budget = 64 * 1024; !deadline.expired();) {
    ssize_t n = ::recv(client->fd(), discard, sizeof discard, 0);
    if (n == 0 || (n < 0 && !WouldBlock() && errno != EINTR)) co_return;
    if (n > 0 && static_cast<size_t>(n) >= budget) co_return;
    if (n > 0) budget -= static_cast<size_t>(n);
    if (n < 0 && WouldBlock()) {
      client->readable = false;
      if (co_await client->Readable()) co_return;
    }
  }
}

// A client connection while it is set up. It counts as one of the listener's active connections
// from Admit() until it ends here, or until the tunnel that takes it over ends (its close hook
// undoes the count then). With the listener's access log, a connection that ends here gets its
// line: why it was not served.
class Setup {
 public:
  Setup(const ListenerState& listener, const tcp::endpoint& peer)
      : listener_(listener), peer_(peer), started_(std::chrono::steady_clock::now()) {}
  Setup(const Setup&) = delete;
  Setup& operator=(const Setup&) = delete;
  ~Setup() {
    if (handed_over_) return;
    if (admitted_) listener_.counters->active.fetch_sub(1, std::memory_order_relaxed);
    if (!listener_.config.access_log) return;
    std::string outcome = rejected_ ? fmt::format("rejected: {}", RejectReasonName(*rejected_))
                                    : std::string("client left");
    LogAccess({.listener = listener_.config.name,
               .client = peer_,
               .client_id = client_id_,
               .pool = listener_.config.pool,
               .accepted_at = started_,
               .bytes_from_client = bytes_from_client_,
               .outcome = outcome});
  }

  void Admit() {
    admitted_ = true;
    listener_.counters->active.fetch_add(1, std::memory_order_relaxed);
  }
  void Reject(RejectReason r) {
    listener_.counters->Reject(r);
    rejected_ = r;
  }
  // What the client sent before a backend was reached: its CONNECT (mqtt) and what came with it.
  void Read(std::string_view client_id, size_t bytes) {
    client_id_ = client_id;
    bytes_from_client_ = bytes;
  }
  void HandOver() { handed_over_ = true; }
  std::chrono::steady_clock::time_point started() const { return started_; }

 private:
  const ListenerState& listener_;
  const tcp::endpoint& peer_;
  std::chrono::steady_clock::time_point started_;
  bool admitted_ = false;
  bool handed_over_ = false;
  std::optional<RejectReason> rejected_;
  std::optional<std::string_view> client_id_;  // the FirstPacket's, which outlives this
  size_t bytes_from_client_ = 0;
};

// Waits for the client's next bytes and appends them to `into`: false, counted as a connect
// timeout when the deadline passed, when there are none.
asio::awaitable<bool> ReadSome(RawSocket& client, const Deadline& deadline, Setup& setup,
                               std::string& into) {
  char chunk[4096];
  while (true) {
    if (!client.readable) {
      boost::system::error_code ec = co_await client.Readable();
      if (deadline.expired()) {
        setup.Reject(RejectReason::kConnectTimeout);
        co_return false;
      }
      if (ec) co_return false;
    }
    ssize_t n = ::recv(client.fd(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && WouldBlock()) {
      client.readable = false;
      client.urgent = false;
      continue;
    }
    if (n <= 0) co_return false;  // the client went away
    // A short read drained the socket, as in the tunnel: the next data comes with an edge, so
    // neither the reads of the setup nor the tunnel after them need one that would only say
    // EAGAIN (but for urgent data, at whose mark a read stops short).
    bool drained = static_cast<size_t>(n) < sizeof chunk && !client.urgent;
    if (drained && !client.peer_closed) client.readable = false;
    into.append(chunk, static_cast<size_t>(n));
    co_return true;
  }
}

// accept_proxy_protocol: reads the PROXY v2 header an upstream load balancer sends first. The
// bytes read past it go to `rest`. nullopt, counted, for anything else.
asio::awaitable<std::optional<net::ProxyHeader>> ReadProxyHeader(RawSocket& client,
                                                                 const ListenerState& listener,
                                                                 const Deadline& deadline,
                                                                 Setup& setup, std::string& rest) {
  std::string bytes;
  while (co_await ReadSome(client, deadline, setup, bytes)) {
    absl::StatusOr<std::optional<net::ProxyHeader>> header = net::ParseProxyV2(bytes);
    if (!header.ok()) {
      setup.Reject(RejectReason::kProxyHeader);
      spdlog::debug("listener {}: {}", listener.config.name, header.status().ToString());
      co_return std::nullopt;
    }
    if (!*header) continue;
    rest = bytes.substr((*header)->size);
    co_return **header;
  }
  co_return std::nullopt;
}

// Reads until one whole packet is there (`bytes`: those read already) and checks that it is a
// valid CONNECT (MQTT 5.0 §3.1: anything else as a first packet closes the connection).
// nullopt, counted, when not.
asio::awaitable<std::optional<FirstPacket>> ReadConnect(std::shared_ptr<RawSocket> client,
                                                        const ListenerState& listener,
                                                        const Deadline& deadline, Setup& setup,
                                                        std::string bytes) {
  FirstPacket first;
  first.bytes = std::move(bytes);
  for (bool more = first.bytes.empty();; more = true) {
    if (more && !co_await ReadSome(*client, deadline, setup, first.bytes)) co_return std::nullopt;
    // The first byte names the packet type: anything but a CONNECT is refused at once, not after
    // waiting (up to the connect timeout) for the rest of a packet that cannot be accepted.
    if (static_cast<uint8_t>(first.bytes[0]) >> 4 !=
        static_cast<uint8_t>(mqtt::PacketType::kConnect)) {
      setup.Reject(RejectReason::kMalformed);
      spdlog::debug("listener {}: refusing a first packet of type {}", listener.config.name,
                    static_cast<uint8_t>(first.bytes[0]) >> 4);
      co_return std::nullopt;
    }
    absl::StatusOr<std::optional<mqtt::Frame>> frame =
        mqtt::ParseFrame(first.bytes, listener.config.max_connect_bytes);
    if (frame.ok() && !frame->has_value()) continue;
    absl::StatusOr<mqtt::Connect> connect =
        frame.ok() ? mqtt::DecodeConnect(**frame) : absl::StatusOr<mqtt::Connect>(frame.status());
    if (!connect.ok()) {
      setup.Reject(RejectReason::kMalformed);
      spdlog::debug("listener {}: refusing a first packet: {}", listener.config.name,
                    connect.status().ToString());
      // Where the broker would answer, so does the proxy: an unsupported protocol level gets
      // CONNACK 0x01 before the close (MQTT 3.1.1 §3.1.2.2 [MQTT-3.1.2-2]), in the 3.1.1 form that
      // clients of every version can read, as the broker sends it.
      if (mqtt::ReasonOf(connect.status()) == mqtt::ReasonCode::kUnsupportedProtocolVersion) {
        co_await Refuse(client, mqtt::ReasonCode::kUnsupportedProtocolVersion, mqtt::Version::k311);
      }
      co_return std::nullopt;
    }
    first.connect = std::move(*connect);
    first.connect_bytes = (*frame)->size;
    co_return first;
  }
}

// A connection to a backend, or why there is none: the backend failed (refused, reset, timed
// out), or this proxy could not even try (out of descriptors, buffers or local ports), which
// says nothing about the backend and must not count against it.
struct BackendConnection {
  std::shared_ptr<RawSocket> socket;
  int local_error = 0;  // errno of a local failure
};

BackendConnection Failed(int error) {
  return BackendConnection{.local_error = net::IsLocalShortage(error) ? error : 0};
}

// Opens a connection to `backend` within `timeout`. The socket joins the poller only once
// connect() is under way: before, an unconnected socket reports hang-up. `oob_inline` (tcp
// mode): the service's urgent data stays in the stream, as the client's does (the listener's).
asio::awaitable<BackendConnection> ConnectBackend(Worker& worker, const BackendState& backend,
                                                  milliseconds timeout, bool oob_inline) {
  const tcp::endpoint& to = backend.endpoint;
  int fd = ::socket(to.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return Failed(errno);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (oob_inline) ::setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);
  int r = ::connect(fd, to.data(), static_cast<socklen_t>(to.size()));
  if (r != 0 && errno != EINPROGRESS) {
    int error = errno;
    ::close(fd);
    co_return Failed(error);
  }
  auto socket = std::make_shared<RawSocket>(worker.poller(), fd);
  if (int error = socket->registration_error()) co_return BackendConnection{.local_error = error};
  if (r == 0) co_return BackendConnection{.socket = std::move(socket)};
  socket->writable = false;
  Deadline deadline(co_await asio::this_coro::executor, timeout, socket);
  if (co_await socket->Writable() || deadline.expired()) co_return BackendConnection{};
  // A refused or failed connect is announced with EPOLLERR; no getsockopt(SO_ERROR) needed to
  // tell, one system call less per connection.
  if (socket->failed) co_return BackendConnection{};
  co_return BackendConnection{.socket = std::move(socket)};
}

// The idle timeout of a tunnel whose MQTT keep alive is `keep_alive_s` (0: none, the listener's
// then): above the 1.5 times the broker enforces, so that the broker times a silent client out
// first and says why (DESIGN.md, step 5).
milliseconds IdleTimeout(const ListenerState& listener, uint16_t keep_alive_s) {
  if (keep_alive_s > 0) return milliseconds(std::max<int64_t>(keep_alive_s * 2000, 10'000));
  return milliseconds(int64_t{listener.config.idle_timeout_s} * 1000);
}

// No backend serves the client: counted, and told so in MQTT (CONNACK "server unavailable").
asio::awaitable<void> Unserved(const std::shared_ptr<RawSocket>& client, Setup& setup,
                               RejectReason reason, const std::optional<FirstPacket>& first) {
  setup.Reject(reason);
  if (first) co_await Refuse(client, mqtt::ReasonCode::kServerUnavailable, first->connect.version);
}

// A connection counted as a backend's from the moment the backend is chosen, so that the clients
// arriving while it is being set up see it: least-connections spreads a burst of them instead of
// sending all to the backend that was least loaded at its start, and max_connections holds.
// Undone unless handed over to the tunnel, whose close hook undoes it.
class Claim {
 public:
  Claim() = default;
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  ~Claim() { To(nullptr); }

  void To(const std::shared_ptr<BackendState>& backend) {
    if (backend == claimed_) return;
    if (claimed_) claimed_->active.fetch_sub(1, std::memory_order_relaxed);
    claimed_ = backend;
    if (claimed_) claimed_->active.fetch_add(1, std::memory_order_relaxed);
  }
  void HandOver() { claimed_ = nullptr; }

 private:
  std::shared_ptr<BackendState> claimed_;
};

}  // namespace

asio::awaitable<void> ServeClient(Worker& worker, std::shared_ptr<const ListenerState> listener,
                                  int client_fd, tcp::endpoint peer) {
  auto client = std::make_shared<RawSocket>(worker.poller(), client_fd);
  // Before the setup: its line names the client id, and its end, if any, comes after the
  // FirstPacket's.
  std::optional<FirstPacket> first;
  Setup setup(*listener, peer);
  const uint32_t max = listener->config.max_connections;
  if (max != 0 && listener->counters->active.load(std::memory_order_relaxed) >= max) {
    setup.Reject(RejectReason::kMaxConnections);
    co_return;  // closes the connection, as mosquitto's max_connections does
  }
  setup.Admit();
  if (client->registration_error() != 0) {
    setup.Reject(RejectReason::kLocalResources);
    co_return;
  }

  const bool mqtt_mode = listener->config.protocol == Protocol::kMqtt;
  // What the client sent before a backend is reached, beyond its CONNECT: in tcp mode, what
  // followed an upstream's PROXY header.
  std::string early;
  // The address the client connected to, when an upstream's PROXY header says it.
  std::optional<tcp::endpoint> destination;
  if (mqtt_mode || listener->config.accept_proxy_protocol) {
    // One deadline for the header and the CONNECT.
    Deadline deadline(co_await asio::this_coro::executor,
                      milliseconds(listener->config.connect_timeout_ms), client);
    if (listener->config.accept_proxy_protocol) {
      std::optional<net::ProxyHeader> header =
          co_await ReadProxyHeader(*client, *listener, deadline, setup, early);
      if (!header) co_return;
      // The client is the one the upstream names (for the hash key, the access log and the
      // header sent on), unless its header is LOCAL: its own connection, a health check.
      if (!header->local) {
        peer = header->source;
        destination = header->destination;
      }
    }
    if (mqtt_mode) {
      first = co_await ReadConnect(client, *listener, deadline, setup, std::move(early));
      if (!first) co_return;
      setup.Read(first->connect.client_id, first->bytes.size());
    }
  }
  // The pool as it is now; held, since a reload may replace the worker's pickers while this
  // coroutine waits. Its settings apply to this connection whatever a reload changes meanwhile;
  // a retry picks from the pool as it is then (a backend keeps its state across reloads, so
  // those tried stay excluded).
  const std::string& pool_name = listener->config.pool;
  PoolPicker* picker = worker.picker(pool_name);
  if (picker == nullptr) {  // a reload removed the pool while the CONNECT was being read
    co_await Unserved(client, setup, RejectReason::kNoBackend, first);
    co_return;
  }
  std::shared_ptr<const Pool> pool_ref = picker->shared_pool();
  const Pool& pool = *pool_ref;
  const PoolConfig& config = pool.config();

  std::string client_id = first ? first->connect.client_id : std::string();
  // The hash key; a client without id (5.0 lets the broker assign one) hashes by address.
  std::string key = config.hash_key == HashKey::kClientId && !client_id.empty()
                        ? client_id
                        : peer.address().to_string();
  bool sticky = config.sticky && !client_id.empty() && pool.sticky() != nullptr;
  auto ttl = std::chrono::seconds(config.sticky_ttl_s);

  // Choose: the backend of the client's sticky record while it may take the connection
  // (Pool::Takes: a backup only while the first tier can take none), else the strategy's.
  // `bound` is the backend the sticky table holds for the client once the choice is made.
  std::shared_ptr<BackendState> chosen;
  std::optional<std::string> bound;
  if (sticky) {
    bound = co_await pool.sticky()->Find(config.name, client_id);
    if (bound) {
      std::shared_ptr<BackendState> b = pool.Find(*bound);
      if (b != nullptr && pool.Takes(*b)) chosen = b;
    }
  }
  std::vector<std::shared_ptr<BackendState>> tried;
  std::shared_ptr<RawSocket> backend;
  bool local_failure = false;
  uint64_t shutdowns_before = 0;  // the chosen backend's, when it was chosen
  Claim claim;
  for (uint32_t attempt = 0; attempt <= config.retries; ++attempt) {
    if (chosen == nullptr) {
      picker = worker.picker(pool_name);
      if (picker != nullptr) chosen = picker->Pick(key, tried);
    }
    if (chosen == nullptr) break;
    // Before any wait: a backend taken down meanwhile (on_down closing its sessions before this
    // one exists) shows as a change of this count once the tunnel is registered.
    shutdowns_before = chosen->shutdowns.load();
    claim.To(chosen);
    if (sticky && !bound) {
      // A new client: record the choice, unless another proxy has just recorded another one for
      // the same client id; then follow that one, so that both agree.
      bound = co_await pool.sticky()->Bind(config.name, client_id, chosen->name(),
                                           /*only_if_absent=*/true, ttl);
      std::shared_ptr<BackendState> b = pool.Find(*bound);
      if (b != nullptr && b != chosen && pool.Takes(*b)) {
        chosen = b;
        shutdowns_before = chosen->shutdowns.load();
        claim.To(chosen);
      }
    }
    local_failure = false;  // the last connect says why the client is not served
    BackendConnection c =
        co_await ConnectBackend(worker, *chosen, milliseconds(config.connect_timeout_ms),
                                /*oob_inline=*/!mqtt_mode);
    if (c.local_error != 0) {
      spdlog::warn("pool {}: cannot open a connection to {}: {}", config.name, chosen->name(),
                   std::strerror(c.local_error));
      local_failure = true;
      // Out of descriptors or memory: no backend will do. Out of local ports towards this one
      // (not its fault): another may.
      if (c.local_error != EADDRNOTAVAIL) {
        chosen = nullptr;
        break;
      }
    } else {
      backend = std::move(c.socket);
      if (backend != nullptr) break;
      spdlog::debug("pool {}: connect to {} failed", config.name, chosen->name());
      worker.ReportConnectFailure(chosen);
    }
    tried.push_back(std::move(chosen));
  }
  if (chosen == nullptr) {
    claim.To(nullptr);  // not while the refusal is written
    co_await Unserved(client, setup,
                      local_failure ? RejectReason::kLocalResources : RejectReason::kNoBackend,
                      first);
    co_return;
  }
  // Passive health hears the verdict from the tunnel, once the backend has answered.
  if (sticky) {
    // The session lives where the client now is: overwrite a record left by a failover.
    if (*bound != chosen->name()) {
      co_await pool.sticky()->Bind(config.name, client_id, chosen->name(), false, ttl);
    } else {
      pool.sticky()->Touch(config.name, client_id, ttl);
    }
  }

  if (first && LeftAfterConnect(*client, *first)) {
    setup.Reject(RejectReason::kClientLeft);
    co_return;
  }

  // The PROXY header first, then what the client has sent so far.
  std::string initial;
  if (config.proxy_protocol) {
    if (!destination) {
      tcp::endpoint local;
      socklen_t len = static_cast<socklen_t>(local.capacity());
      ::getsockname(client->fd(), local.data(), &len);
      local.resize(len);
      destination = local;
    }
    initial = net::EncodeProxyV2(peer, *destination);
  }
  const std::string& sent_early = first ? first->bytes : early;
  initial += sent_early;
  if (!initial.empty()) {
    Deadline deadline(co_await asio::this_coro::executor, milliseconds(config.connect_timeout_ms),
                      backend);
    if (!co_await SendAll(*backend, initial, deadline)) {
      worker.ReportConnectFailure(chosen);
      claim.To(nullptr);
      co_await Unserved(client, setup, RejectReason::kNoBackend, first);
      co_return;
    }
    chosen->bytes_to_backend.fetch_add(initial.size(), std::memory_order_relaxed);
  }

  claim.HandOver();
  chosen->connections_total.fetch_add(1, std::memory_order_relaxed);
  Tunnel::Hooks hooks;
  BackendState* counted = chosen.get();
  std::function<void()> touch;
  if (sticky) {
    touch = [store = pool.shared_sticky(), pool_name = config.name, client_id, ttl] {
      store->Touch(pool_name, client_id, ttl);
    };
    hooks.refresh = touch;
    // Twice per TTL, so that the record outlives a connection longer than the TTL whatever the
    // timer's lateness (StickyStore: "a record lives while its client is connected").
    hooks.refresh_interval = std::chrono::duration_cast<milliseconds>(ttl) / 2;
  }
  setup.HandOver();
  if (first && first->connect.version == mqtt::Version::k5) {
    // The client follows the CONNACK's Server Keep Alive, if any, instead of its own: so does
    // the idle timeout.
    hooks.first_reply = [listener, reader = ConnackReader()](
                            std::string_view reply,
                            bool& done) mutable -> std::optional<milliseconds> {
      std::optional<uint16_t> keep_alive_s = reader.Feed(reply, done);
      if (!keep_alive_s) return std::nullopt;
      return IdleTimeout(*listener, *keep_alive_s);
    };
  }
  std::optional<std::string> logged_id;  // copied only for the access log
  if (listener->config.access_log && first) logged_id = first->connect.client_id;
  hooks.close = [counted, listener, touch, peer, logged_id = std::move(logged_id),
                 sent_first = sent_early.size(),
                 accepted_at = setup.started()](const Tunnel::Summary& s) {
    counted->active.fetch_sub(1, std::memory_order_relaxed);
    listener->counters->active.fetch_sub(1, std::memory_order_relaxed);
    if (touch) touch();  // the sticky record now lives `ttl` past the disconnect
    if (!listener->config.access_log) return;
    LogAccess({.listener = listener->config.name,
               .client = peer,
               .client_id = logged_id,
               .pool = listener->config.pool,
               .backend = counted->name(),
               .accepted_at = accepted_at,
               .bytes_from_client = sent_first + s.bytes_from_client,
               .bytes_to_client = s.bytes_to_client,
               .outcome = SessionEndName(s.end)});
  };
  // A reload dropped the backend, or its sessions were closed (on_down, on_up, the admin API),
  // while this client was being connected to it, after the workers closed its other clients:
  // this one goes the same way.
  bool retired = chosen->retired.load();
  bool closing = retired || chosen->shutdowns.load() != shutdowns_before;
  SessionEnd why = retired ? SessionEnd::kBackendRemoved : chosen->shutdown_why.load();
  auto tunnel = std::make_shared<Tunnel>(
      worker, std::move(client), std::move(backend), std::move(chosen),
      IdleTimeout(*listener, first ? first->connect.keep_alive_s : 0),
      /*half_close=*/!mqtt_mode, milliseconds(mqtt_mode ? config.answer_timeout_ms : 0),
      std::move(hooks));
  tunnel->Start();
  if (closing) worker.CloseWithin(*tunnel, milliseconds(config.shutdown_jitter_ms), why);
}

}  // namespace proxy
