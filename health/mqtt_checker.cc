// MqttChecker: CONNECT, CONNACK, DISCONNECT with the project's codec.
#include "health/mqtt_checker.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "health/probe.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "net/proxy_protocol.h"

namespace health {

namespace asio = boost::asio;

MqttChecker::MqttChecker(const CheckSpec& spec)
    : hello_(spec.proxy_protocol ? net::EncodeProxyV2Local() : std::string()) {
  // A short keep alive: a broker refuses a 3.1.1 client asking more than its maximum
  // (mosquitto's max_keepalive, ours max_keepalive_s), and 0 where there is one.
  mqtt::Encode(mqtt::Connect{.version = mqtt::Version::k311,
                             .clean_start = true,
                             .keep_alive_s = kKeepAliveS,
                             .client_id = spec.mqtt_client_id,
                             .username = spec.mqtt_username,
                             .password = spec.mqtt_password},
               mqtt::Version::k311, hello_);
}

asio::awaitable<CheckResult> MqttChecker::Check(asio::ip::tcp::endpoint target,
                                                std::chrono::milliseconds timeout) {
  asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
  co_return co_await RunWithTimeout(
      [&]() -> asio::awaitable<CheckResult> {
        if (std::optional<CheckResult> failed = co_await ConnectTo(socket, target)) {
          co_return *failed;
        }
        auto [wec, written] = co_await asio::async_write(socket, asio::buffer(hello_),
                                                         asio::as_tuple(asio::use_awaitable));
        if (wec) co_return CheckResult{.error = "write: " + wec.message()};
        mqtt::StreamDecoder decoder(1024);
        std::array<char, 512> buffer;
        while (true) {
          auto [rec, n] = co_await socket.async_read_some(asio::buffer(buffer),
                                                          asio::as_tuple(asio::use_awaitable));
          if (rec) co_return CheckResult{.error = "read: " + rec.message()};
          decoder.Feed(std::string_view(buffer.data(), n));
          absl::StatusOr<std::optional<mqtt::Packet>> packet = decoder.Next(mqtt::Version::k311);
          if (!packet.ok())
            co_return CheckResult{.error = "invalid reply: " + packet.status().ToString()};
          if (!packet->has_value()) continue;
          auto* ack = std::get_if<mqtt::Connack>(&**packet);
          if (ack == nullptr) co_return CheckResult{.error = "first reply is not CONNACK"};
          if (ack->reason != mqtt::ReasonCode::kSuccess) {
            co_return CheckResult{.error = "CONNACK refused: " +
                                           std::string(mqtt::ReasonName(ack->reason))};
          }
          std::string out;
          mqtt::Encode(mqtt::Disconnect{}, mqtt::Version::k311, out);
          co_await asio::async_write(socket, asio::buffer(out),
                                     asio::as_tuple(asio::use_awaitable));
          co_return CheckResult{.ok = true};
        }
      },
      timeout);
}

}  // namespace health
