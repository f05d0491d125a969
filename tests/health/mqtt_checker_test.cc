// Tests of health/mqtt_checker.h against a broker of the test's own: what the check sends, and
// its verdict on each kind of answer.
#include "health/mqtt_checker.h"

#include <gtest/gtest.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <vector>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "net/proxy_protocol.h"
#include "tests/health/check_against.h"

namespace health {
namespace {

using boost::asio::ip::tcp;
namespace asio = boost::asio;

struct Served {
  std::string received;  // every byte the check sent, up to its close
  CheckResult result;
};

// Checks with `spec` a broker that answers the first bytes it reads with `answer` (none: it
// stays silent), then reads until the check closes.
Served CheckAgainst(const CheckSpec& spec, std::string answer,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  MqttChecker checker(spec);
  Served served;
  served.result = CheckAgainst(
      checker,
      [&](tcp::socket& s) -> asio::awaitable<void> {
        std::array<char, 4096> buffer;
        boost::system::error_code ec;
        bool answered = answer.empty();
        while (!ec) {
          size_t n = co_await s.async_read_some(asio::buffer(buffer),
                                                asio::redirect_error(asio::use_awaitable, ec));
          served.received.append(buffer.data(), n);
          if (!answered && n > 0) {
            answered = true;
            co_await asio::async_write(s, asio::buffer(answer),
                                       asio::redirect_error(asio::use_awaitable, ec));
          }
        }
      },
      timeout);
  return served;
}

std::string Connack(mqtt::ReasonCode reason) {
  std::string out;
  mqtt::Encode(mqtt::Connack{.reason = reason}, mqtt::Version::k311, out);
  return out;
}

// The packets in `bytes` (3.1.1).
std::vector<mqtt::Packet> Packets(std::string_view bytes) {
  mqtt::StreamDecoder decoder(1 << 16);
  decoder.Feed(bytes);
  std::vector<mqtt::Packet> out;
  while (true) {
    absl::StatusOr<std::optional<mqtt::Packet>> p = decoder.Next(mqtt::Version::k311);
    if (!p.ok() || !p->has_value()) return out;
    out.push_back(std::move(**p));
  }
}

TEST(MqttCheckerTest, ConnectsWithTheCredentialsAndDisconnects) {
  Served s = CheckAgainst({.kind = CheckKind::kMqtt,
                           .mqtt_client_id = "sb-health-x",
                           .mqtt_username = "probe",
                           .mqtt_password = "s3cret"},
                          Connack(mqtt::ReasonCode::kSuccess));
  EXPECT_TRUE(s.result.ok) << s.result.error;
  std::vector<mqtt::Packet> sent = Packets(s.received);
  ASSERT_EQ(sent.size(), 2u);
  const auto& connect = std::get<mqtt::Connect>(sent[0]);
  EXPECT_EQ(connect.version, mqtt::Version::k311);
  EXPECT_EQ(connect.client_id, "sb-health-x");
  EXPECT_EQ(connect.username, "probe");
  EXPECT_EQ(connect.password, "s3cret");
  EXPECT_TRUE(connect.clean_start);
  EXPECT_EQ(connect.keep_alive_s, 5);
  EXPECT_TRUE(std::holds_alternative<mqtt::Disconnect>(sent[1]));  // no will, a normal end
}

TEST(MqttCheckerTest, NoCredentialsUnlessGiven) {
  Served s = CheckAgainst({.kind = CheckKind::kMqtt}, Connack(mqtt::ReasonCode::kSuccess));
  EXPECT_TRUE(s.result.ok) << s.result.error;
  const auto& connect = std::get<mqtt::Connect>(Packets(s.received).at(0));
  EXPECT_FALSE(connect.username.has_value());
  EXPECT_FALSE(connect.password.has_value());
}

TEST(MqttCheckerTest, ALocalProxyHeaderComesFirstBehindAProxyProtocolPool) {
  Served s = CheckAgainst({.kind = CheckKind::kMqtt, .proxy_protocol = true},
                          Connack(mqtt::ReasonCode::kSuccess));
  EXPECT_TRUE(s.result.ok) << s.result.error;
  absl::StatusOr<std::optional<net::ProxyHeader>> header = net::ParseProxyV2(s.received);
  ASSERT_TRUE(header.ok() && header->has_value());
  EXPECT_TRUE((*header)->local);
  EXPECT_EQ(Packets(std::string_view(s.received).substr((*header)->size)).size(), 2u);
}

TEST(MqttCheckerTest, ARefusalOrAnythingButACONNACKFails) {
  Served refused =
      CheckAgainst({.kind = CheckKind::kMqtt}, Connack(mqtt::ReasonCode::kNotAuthorized));
  EXPECT_FALSE(refused.result.ok);
  EXPECT_EQ(refused.result.error, "CONNACK refused: not_authorized");
  EXPECT_EQ(Packets(refused.received).size(), 1u);  // no DISCONNECT after a refusal

  Served other = CheckAgainst({.kind = CheckKind::kMqtt}, std::string("\xd0\x00", 2));  // PINGRESP
  EXPECT_FALSE(other.result.ok);
  EXPECT_EQ(other.result.error, "first reply is not CONNACK");

  Served garbage = CheckAgainst({.kind = CheckKind::kMqtt}, "HTTP/1.1 400 Bad Request\r\n\r\n");
  EXPECT_FALSE(garbage.result.ok);
  EXPECT_TRUE(garbage.result.error.starts_with("invalid reply")) << garbage.result.error;
}

TEST(MqttCheckerTest, ASilentBrokerFailsAtTheTimeout) {
  Served silent = CheckAgainst({.kind = CheckKind::kMqtt}, "", std::chrono::milliseconds(100));
  EXPECT_FALSE(silent.result.ok);
  EXPECT_EQ(silent.result.error, "timed out");
  EXPECT_GE(silent.result.latency, std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace health
