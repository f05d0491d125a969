// The handshake: read the CONNECT, vet it, hand it over.
#include "backend/handshake.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "backend/broker.h"
#include "backend/graceful_close.h"
#include "backend/shard.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/error.h"
#include "net/proxy_protocol.h"

namespace backend {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using mqtt::ReasonCode;

class Handshake : public std::enable_shared_from_this<Handshake>, public PendingSocket {
 public:
  Handshake(Shard& shard, tcp::socket socket, SocketToken token)
      : shard_(shard),
        socket_(std::move(socket)),
        token_(std::move(token)),
        timer_(shard.io()),
        expect_proxy_header_(shard.config().proxy_protocol) {
    shard_.Register(this);
  }
  ~Handshake() { shard_.Unregister(this); }

  // Shutdown: close now, without an answer.
  void Abort() override {
    if (!done_) Finish();
  }

  void Start() {
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    timer_.expires_after(std::chrono::milliseconds(shard_.config().limits.connect_timeout_ms));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->done_) return;
      self->shard_.metrics().Reject(RejectReason::kConnectTimeout);
      self->Refuse(std::nullopt, mqtt::Version::k311, "no CONNECT in time");
    });
    WaitReadable();
  }

 private:
  void WaitReadable() {
    socket_.async_wait(
        tcp::socket::wait_read,
        [self = shared_from_this()](const boost::system::error_code& ec) { self->OnReadable(ec); });
  }

  void OnReadable(const boost::system::error_code& wait_ec) {
    if (done_) return;
    if (wait_ec) return Finish();
    uint32_t max_packet = shard_.config().limits.max_packet_bytes;
    size_t old = buffer_.size();
    size_t chunk = std::min<size_t>(64 * 1024, max_packet);
    buffer_.resize(old + chunk);
    boost::system::error_code ec;
    size_t n = socket_.read_some(asio::buffer(buffer_.data() + old, chunk), ec);
    buffer_.resize(old + n);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return WaitReadable();
    if (ec) return Finish();
    shard_.metrics().bytes_received.Add(static_cast<int64_t>(n));

    if (expect_proxy_header_) {
      // Behind a proxy that says who the client is: the PROXY v2 header comes first, and a
      // connection without one did not come through the proxy.
      absl::StatusOr<std::optional<net::ProxyHeader>> header = net::ParseProxyV2(buffer_);
      if (header.ok() && !header->has_value()) return WaitReadable();
      if (!header.ok()) {
        shard_.metrics().Reject(RejectReason::kProxyProtocol);
        return Refuse(std::nullopt, mqtt::Version::k311, header.status().ToString());
      }
      if (!(*header)->local) client_ = (*header)->source;
      buffer_.erase(0, (*header)->size);
      expect_proxy_header_ = false;
    }

    absl::StatusOr<std::optional<mqtt::Frame>> frame = mqtt::ParseFrame(buffer_, max_packet);
    if (frame.ok() && !frame->has_value()) return WaitReadable();
    if (!frame.ok()) {
      shard_.metrics().Reject(RejectReason::kMalformedConnect);
      return Refuse(std::nullopt, mqtt::Version::k311, frame.status().ToString());
    }
    absl::StatusOr<mqtt::Connect> connect = mqtt::DecodeConnect(**frame);
    if (!connect.ok()) return OnBadConnect(**frame, connect.status());
    std::string rest = buffer_.substr((*frame)->size);
    Vet(std::move(*connect), std::move(rest));
  }

  // A CONNECT that does not decode. Unsupported versions are told so in the 3.1.1 CONNACK every
  // version understands (3.1.1 §3.1.2.2); a malformed 5.0 CONNECT gets a 5.0 CONNACK with the
  // reason; anything else is closed without an answer.
  void OnBadConnect(const mqtt::Frame& frame, const absl::Status& status) {
    ReasonCode reason = mqtt::ReasonOf(status);
    if (reason == ReasonCode::kUnsupportedProtocolVersion) {
      shard_.metrics().Reject(RejectReason::kUnsupportedVersion);
      return Refuse(reason, mqtt::Version::k311, status.ToString());
    }
    shard_.metrics().Reject(RejectReason::kMalformedConnect);
    if (frame.type() == mqtt::PacketType::kConnect && IsVersion5(frame)) {
      return Refuse(reason, mqtt::Version::k5, status.ToString());
    }
    Refuse(std::nullopt, mqtt::Version::k311, status.ToString());
  }

  static bool IsVersion5(const mqtt::Frame& frame) {
    // Protocol name "MQTT" (2 + 4 bytes), then the level.
    return frame.body.size() > 6 && frame.body.substr(0, 6) == std::string_view("\0\4MQTT", 6) &&
           frame.body[6] == 5;
  }

  void Vet(mqtt::Connect connect, std::string rest) {
    Broker& broker = shard_.broker();
    const BrokerLimits& limits = shard_.config().limits;
    const bool v5 = connect.version == mqtt::Version::k5;
    bool assigned = false;
    if (connect.client_id.empty()) {
      // 5.0 assigns an identifier and says which (§3.1.3.1); 3.1.1 allows an empty one only for a
      // clean session (§3.1.3.1 of 3.1.1); 3.1 never.
      if (connect.version == mqtt::Version::k31 || (!v5 && !connect.clean_start)) {
        shard_.metrics().Reject(RejectReason::kClientIdRejected);
        return Refuse(ReasonCode::kClientIdentifierNotValid, connect.version,
                      connect.version == mqtt::Version::k31
                          ? "empty client id (MQTT 3.1)"
                          : "empty client id with a persistent session");
      }
      connect.client_id = broker.AssignClientId();
      assigned = true;
    }
    // Keep alive 0 means none at all, which is more than any maximum that is configured (the
    // connection's 5.0 path treats it the same way).
    bool capped = limits.max_keepalive_s < 65535;
    if (!v5 &&
        (connect.keep_alive_s > limits.max_keepalive_s || (connect.keep_alive_s == 0 && capped))) {
      // 3.1.1 cannot announce a server keep alive; refuse as mosquitto does, with "identifier
      // rejected", the closest of 3.1.1's six return codes.
      shard_.metrics().Reject(RejectReason::kKeepAliveRejected);
      return Refuse(ReasonCode::kClientIdentifierNotValid, connect.version,
                    "keep alive above max_keepalive_s");
    }
    // "$node/" client ids are the links of this node's cluster (node_link.h), which skip the
    // session claim, access rules and checks of what they forward: only a node that knows the
    // cluster's secret (in Redis, with everything else the nodes share) may use one.
    if (IsLinkClientId(connect.client_id) &&
        (broker.cluster() == nullptr || !broker.cluster()->IsSecret(connect.password))) {
      shard_.metrics().Reject(RejectReason::kNotANode);
      return Refuse(ReasonCode::kNotAuthorized, connect.version,
                    "a node link's client id without the cluster's secret");
    }
    if (v5 && connect.properties.authentication_method) {
      shard_.metrics().Reject(RejectReason::kBadAuthentication);
      return Refuse(ReasonCode::kBadAuthenticationMethod, connect.version,
                    "enhanced authentication is not supported");
    }
    std::optional<ClientSlot> slot = broker.ReserveClient();
    if (!slot) {
      shard_.metrics().Reject(RejectReason::kMaxConnections);
      return Refuse(v5 ? ReasonCode::kQuotaExceeded : ReasonCode::kServerUnavailable,
                    connect.version, "max_connections reached");
    }
    HandOver(std::move(connect), std::move(rest), assigned, std::move(*slot));
  }

  void HandOver(mqtt::Connect connect, std::string rest, bool assigned, ClientSlot slot) {
    done_ = true;
    timer_.cancel();
    Shard& home = shard_.broker().HomeShard(connect.client_id);
    ConnectionSeed seed{.protocol = socket_.local_endpoint().protocol(),
                        .token = std::move(token_),
                        .slot = std::move(slot),
                        .connect = std::move(connect),
                        .pending_bytes = std::move(rest),
                        .client_id_assigned = assigned,
                        .client = client_};
    // The socket changes thread only as a descriptor: Asio objects belong to one io_context.
    seed.native_socket = socket_.release();
    asio::post(home.io(),
               [&home, seed = std::move(seed)]() mutable { home.Adopt(std::move(seed)); });
  }

  // Closes, after a CONNACK with `reason` if there is one.
  void Refuse(std::optional<ReasonCode> reason, mqtt::Version version, std::string_view why) {
    spdlog::debug("refusing connection: {}", why);
    OutBuffer final_bytes;
    if (reason) mqtt::Encode(mqtt::Connack{.reason = *reason}, version, final_bytes.bytes());
    done_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    CloseGracefully(std::move(socket_), std::move(final_bytes), std::move(token_));
  }

  void Finish() {
    done_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  Shard& shard_;
  tcp::socket socket_;
  SocketToken token_;
  asio::steady_timer timer_;
  std::string buffer_;
  bool done_ = false;
  bool expect_proxy_header_;
  std::optional<tcp::endpoint> client_;  // the client behind the proxy, from the PROXY header
};

}  // namespace

void StartHandshake(Shard& shard, tcp::socket socket, SocketToken token) {
  std::make_shared<Handshake>(shard, std::move(socket), std::move(token))->Start();
}

}  // namespace backend
