// A Redis client on Asio: hiredis's asynchronous API driven by the io_context it lives on, so
// that no I/O thread ever blocks on Redis.
//
// One client is one connection, used from its io_context's thread only. It connects at Start()
// and, whenever the connection fails, reconnects with a backoff that doubles from 100 ms to 5 s
// (and starts from 100 ms again once a connection has lasted 5 s).
// Commands are pipelined: each is written at once and its reply arrives in order. Every call has a
// deadline; since replies come in order, a late reply means the connection is stuck, so the
// client fails that call, drops the connection and reconnects. While disconnected, calls fail at
// once with UNAVAILABLE: callers fall back rather than queue (DESIGN.md: a Redis outage must never
// stop traffic).
//
// A client can instead be a subscriber: Subscribe() channels before Start(); the subscriptions are
// made again after every reconnect.
//
//   auto redis = RedisClient::Create(io, *ParseRedisUrl("redis://127.0.0.1:6379/0"));
//   redis->Start();
//   absl::StatusOr<RedisReply> r = co_await redis->Call({"SET", "k", "v", "NX", "EX", "60"});
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace state {

struct RedisOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  int db = 0;
  std::optional<std::string> username;  // Redis 6 ACL user; the password alone: "default"
  std::optional<std::string> password;  // sent with AUTH before anything else
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{500};
};

// Parses "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"; HOST may be an IPv6 address in brackets.
[[nodiscard]] absl::StatusOr<RedisOptions> ParseRedisUrl(std::string_view url);
// The URL with its password, if any, as "***": what logs and error messages show.
std::string RedactRedisUrl(std::string_view url);

struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // string, status or error text
  int64_t integer = 0;
  std::vector<RedisReply> elements;

  bool nil() const { return type == Type::kNil; }
};

class RedisClient : public std::enable_shared_from_this<RedisClient> {
 public:
  using Callback = std::function<void(absl::StatusOr<RedisReply>)>;
  using MessageHandler = std::function<void(std::string_view channel, std::string_view message)>;

  static std::shared_ptr<RedisClient> Create(boost::asio::io_context& io, RedisOptions options);
  ~RedisClient();

  // Reconnects wait from the first to the last, doubling after each failed attempt: a client
  // is back at most kLastBackoff (and a handshake) after its server.
  static constexpr std::chrono::milliseconds kFirstBackoff{100};
  static constexpr std::chrono::milliseconds kLastBackoff{5000};

  void Start();
  // Disconnects for good; pending calls fail.
  void Stop();
  bool connected() const;

  // Sends a command. `done` runs on the client's thread, exactly once: with the reply (a Redis
  // error reply is an error status), or with UNAVAILABLE or DEADLINE_EXCEEDED.
  void Command(std::vector<std::string> args, Callback done);
  boost::asio::awaitable<absl::StatusOr<RedisReply>> Call(std::vector<std::string> args);

  // Before Start(): makes this client a subscriber to `channel`.
  void Subscribe(std::string channel, MessageHandler on_message);
  // Adds a function called after each (re)connection, e.g. to re-publish state; or after each
  // loss of the connection.
  void OnConnect(std::function<void()> f);
  void OnDisconnect(std::function<void()> f);

  struct Impl;  // the hiredis context and its adapter (redis_client.cc)

 private:
  explicit RedisClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace state
