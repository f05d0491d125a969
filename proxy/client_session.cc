// The setup coroutine of a client connection.
#include "proxy/client_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/error.h"
#include "net/listen.h"
#include "net/proxy_protocol.h"
#include "proxy/tunnel.h"
#include "proxy/worker.h"

namespace proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

namespace {

constexpr auto kAwaitTuple = asio::as_tuple(asio::use_awaitable);

// The first packet of an mqtt listener's connection, and every byte read with it.
struct FirstPacket {
  std::string bytes;
  mqtt::Connect connect;
};

// Answers a CONNECT with a refusing CONNACK in `version`'s encoding, and closes the sending side.
asio::awaitable<void> Refuse(tcp::socket& client, mqtt::ReasonCode reason, mqtt::Version version) {
  std::string out;
  mqtt::Encode(mqtt::Connack{.reason = reason}, version, out);
  co_await asio::async_write(client, asio::buffer(out), kAwaitTuple);
  boost::system::error_code ignored;
  client.shutdown(tcp::socket::shutdown_send, ignored);
}

// Reads until one whole packet is there and checks that it is a valid CONNECT (MQTT 5.0 §3.1:
// anything else as a first packet closes the connection). nullopt, counted, when not.
asio::awaitable<std::optional<FirstPacket>> ReadConnect(tcp::socket& client,
                                                        const ListenerState& listener) {
  asio::steady_timer deadline(co_await asio::this_coro::executor,
                              milliseconds(listener.config.connect_timeout_ms));
  FirstPacket first;
  std::array<char, 4096> chunk;
  while (true) {
    auto result = co_await (client.async_read_some(asio::buffer(chunk), kAwaitTuple) ||
                            deadline.async_wait(kAwaitTuple));
    if (result.index() == 1) {
      listener.counters->Reject(RejectReason::kConnectTimeout);
      co_return std::nullopt;
    }
    auto [ec, n] = std::get<0>(result);
    if (ec) co_return std::nullopt;  // the client went away
    first.bytes.append(chunk.data(), n);
    // The first byte names the packet type: anything but a CONNECT is refused at once, not after
    // waiting (up to the connect timeout) for the rest of a packet that cannot be accepted.
    if (static_cast<uint8_t>(first.bytes[0]) >> 4 !=
        static_cast<uint8_t>(mqtt::PacketType::kConnect)) {
      listener.counters->Reject(RejectReason::kMalformed);
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
      listener.counters->Reject(RejectReason::kMalformed);
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
    co_return first;
  }
}

asio::awaitable<bool> ConnectBackend(tcp::socket& socket, const BackendState& backend,
                                     milliseconds timeout) {
  asio::steady_timer deadline(co_await asio::this_coro::executor, timeout);
  auto result = co_await (socket.async_connect(backend.endpoint, kAwaitTuple) ||
                          deadline.async_wait(kAwaitTuple));
  if (result.index() == 1) co_return false;
  auto [ec] = std::get<0>(result);
  co_return !ec;
}

// The idle timeout of a tunnel: above 1.5 times the MQTT keep alive, so that the broker, which
// enforces 1.5 times, times a silent client out first and says why (DESIGN.md, step 5).
milliseconds IdleTimeout(const ListenerState& listener, const std::optional<FirstPacket>& first) {
  if (first && first->connect.keep_alive_s > 0) {
    return milliseconds(std::max<int64_t>(first->connect.keep_alive_s * 2000, 10'000));
  }
  return milliseconds(int64_t{listener.config.idle_timeout_s} * 1000);
}

}  // namespace

asio::awaitable<void> ServeClient(Worker& worker, std::shared_ptr<const ListenerState> listener,
                                  tcp::socket client) {
  ListenerCounters& counters = *listener->counters;
  counters.active.fetch_add(1, std::memory_order_relaxed);
  // The connection counts as the listener's until it ends: here when the setup gives up, or in
  // the tunnel's close hook once the tunnel carries it.
  struct ActiveGuard {
    ListenerCounters& c;
    bool handed_over = false;
    ~ActiveGuard() {
      if (!handed_over) c.active.fetch_sub(1, std::memory_order_relaxed);
    }
  } guard{counters};

  const bool mqtt_mode = listener->config.protocol == Protocol::kMqtt;
  std::optional<FirstPacket> first;
  if (mqtt_mode) {
    first = co_await ReadConnect(client, *listener);
    if (!first) co_return;
  }
  // The pool as it is now; held, since a reload may replace the worker's pickers while this
  // coroutine waits. A reload during the setup therefore applies from the next connection on.
  const std::string& pool_name = listener->config.pool;
  PoolPicker* picker = worker.picker(pool_name);
  if (picker == nullptr) co_return;  // a reload removed the pool in between
  std::shared_ptr<const Pool> pool_ref = picker->shared_pool();
  const Pool& pool = *pool_ref;
  const PoolConfig& config = pool.config();

  boost::system::error_code ec;
  tcp::endpoint peer = client.remote_endpoint(ec);
  std::string client_id = first ? first->connect.client_id : std::string();
  // The hash key; a client without id (5.0 lets the broker assign one) hashes by address.
  std::string key = config.hash_key == HashKey::kClientId && !client_id.empty()
                        ? client_id
                        : peer.address().to_string();
  bool sticky = config.sticky && !client_id.empty() && pool.sticky() != nullptr;
  auto ttl = std::chrono::seconds(config.sticky_ttl_s);

  // Choose: the backend of the client's sticky record while it is usable, else the strategy's.
  // `bound` is the backend the sticky table holds for the client once the choice is made.
  std::shared_ptr<BackendState> chosen;
  std::optional<std::string> bound;
  if (sticky) {
    bound = co_await pool.sticky()->Find(config.name, client_id);
    if (bound) {
      std::shared_ptr<BackendState> b = pool.Find(*bound);
      if (b != nullptr && b->usable()) chosen = b;
    }
  }
  std::vector<std::shared_ptr<BackendState>> tried;
  tcp::socket backend(co_await asio::this_coro::executor);
  for (uint32_t attempt = 0; attempt <= config.retries; ++attempt) {
    if (chosen == nullptr) {
      picker = worker.picker(pool_name);
      if (picker != nullptr && picker->shared_pool() == pool_ref) chosen = picker->Pick(key, tried);
    }
    if (chosen == nullptr) break;
    if (sticky && !bound) {
      // A new client: record the choice, unless another proxy has just recorded another one for
      // the same client id; then follow that one, so that both agree.
      bound = co_await pool.sticky()->Bind(config.name, client_id, chosen->name(),
                                           /*only_if_absent=*/true, ttl);
      std::shared_ptr<BackendState> b = pool.Find(*bound);
      if (b != nullptr && b != chosen && b->usable()) chosen = b;
    }
    backend = tcp::socket(co_await asio::this_coro::executor);
    if (co_await ConnectBackend(backend, *chosen, milliseconds(config.connect_timeout_ms))) break;
    spdlog::debug("pool {}: connect to {} failed", config.name, chosen->name());
    worker.ReportConnectFailure(chosen);
    tried.push_back(std::move(chosen));
  }
  if (chosen == nullptr) {
    counters.Reject(RejectReason::kNoBackend);
    if (first)
      co_await Refuse(client, mqtt::ReasonCode::kServerUnavailable, first->connect.version);
    co_return;
  }
  worker.ReportConnectSuccess(chosen);
  if (sticky) {
    // The session lives where the client now is: overwrite a record left by a failover.
    if (*bound != chosen->name()) {
      co_await pool.sticky()->Bind(config.name, client_id, chosen->name(), false, ttl);
    } else {
      pool.sticky()->Touch(config.name, client_id, ttl);
    }
  }
  net::SetNoDelay(backend);

  // The PROXY header first, then what the client has sent so far.
  std::string initial;
  if (config.proxy_protocol) initial = net::EncodeProxyV2(peer, client.local_endpoint(ec));
  if (first) initial += first->bytes;
  if (!initial.empty()) {
    auto [wec, written] = co_await asio::async_write(backend, asio::buffer(initial), kAwaitTuple);
    if (wec) {
      worker.ReportConnectFailure(chosen);
      if (first)
        co_await Refuse(client, mqtt::ReasonCode::kServerUnavailable, first->connect.version);
      co_return;
    }
    chosen->bytes_to_backend.fetch_add(initial.size(), std::memory_order_relaxed);
  }

  chosen->active.fetch_add(1, std::memory_order_relaxed);
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
  guard.handed_over = true;
  hooks.close = [counted, listener_counters = listener->counters, touch] {
    counted->active.fetch_sub(1, std::memory_order_relaxed);
    listener_counters->active.fetch_sub(1, std::memory_order_relaxed);
    if (touch) touch();  // the sticky record now lives `ttl` past the disconnect
  };
  std::make_shared<Tunnel>(worker, std::move(client), std::move(backend), std::move(chosen),
                           IdleTimeout(*listener, first), std::move(hooks))
      ->Start();
}

}  // namespace proxy
