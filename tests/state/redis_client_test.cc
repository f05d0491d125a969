// Tests of state/redis_client.h against a real redis-server.
#include "state/redis_client.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "tests/state/redis_server.h"

namespace state {
namespace {

namespace asio = boost::asio;

RedisOptions Options(uint16_t port) {
  RedisOptions o;
  o.port = port;
  o.command_timeout = std::chrono::milliseconds(300);
  return o;
}

TEST(RedisUrlTest, Parses) {
  auto o = ParseRedisUrl("redis://10.0.0.5:6380/2");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->host, "10.0.0.5");
  EXPECT_EQ(o->port, 6380);
  EXPECT_EQ(o->db, 2);
  auto d = ParseRedisUrl("redis://localhost");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 6379);
  EXPECT_EQ(d->db, 0);
  for (const char* bad :
       {"http://x:1", "redis://", "redis://h:0", "redis://h:x", "redis://h/-1", "redis://[::1",
        "redis://::1", "redis://user@h", "redis://:1", "redis://[]:1"}) {
    EXPECT_FALSE(ParseRedisUrl(bad).ok()) << bad;
  }
}

TEST(RedisUrlTest, ParsesCredentialsAndIPv6) {
  auto both = ParseRedisUrl("redis://alice:s3cr:et@10.0.0.5:6380/2");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->username, "alice");
  EXPECT_EQ(both->password, "s3cr:et");
  EXPECT_EQ(both->host, "10.0.0.5");
  EXPECT_EQ(both->port, 6380);
  auto password = ParseRedisUrl("redis://:pw@h");
  ASSERT_TRUE(password.ok());
  EXPECT_FALSE(password->username.has_value());
  EXPECT_EQ(password->password, "pw");
  auto v6 = ParseRedisUrl("redis://[::1]:6390");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 6390);
  EXPECT_EQ(ParseRedisUrl("redis://[::1]")->port, 6379);
}

TEST(RedisUrlTest, RedactsThePassword) {
  EXPECT_EQ(RedactRedisUrl("redis://alice:s3cret@h:1/2"), "redis://alice:***@h:1/2");
  EXPECT_EQ(RedactRedisUrl("redis://:s3cret@h"), "redis://:***@h");
  EXPECT_EQ(RedactRedisUrl("redis://h:1"), "redis://h:1");
  EXPECT_EQ(ParseRedisUrl("redis://u:s3cret@h:x").status().message().find("s3cret"),
            std::string_view::npos);
}

TEST(RedisClientTest, ResolvesAHostName) {
  RedisServer server;
  asio::io_context io;
  RedisOptions o = Options(server.port());
  o.host = "localhost";
  auto c = Connected(io, o);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(Exec(io, *c, {"PING"}).ok());
}

TEST(RedisClientTest, AuthenticatesWithThePasswordOfItsUrl) {
  RedisServer server;
  asio::io_context io;
  {
    auto admin = Connected(io, Options(server.port()));
    ASSERT_NE(admin, nullptr);
    ASSERT_TRUE(Exec(io, *admin, {"CONFIG", "SET", "requirepass", "s3cret"}).ok());
  }
  RedisOptions right = Options(server.port());
  right.password = "s3cret";
  auto accepted = Connected(io, right);
  ASSERT_NE(accepted, nullptr);
  EXPECT_TRUE(Exec(io, *accepted, {"SET", "k", "v"}).ok());
}

TEST(RedisClientTest, CommandsAndReplies) {
  RedisServer server;
  asio::io_context io;
  auto c = Connected(io, Options(server.port()));
  ASSERT_NE(c, nullptr);
  auto set = Exec(io, *c, {"SET", "k", "v", "NX", "EX", "60"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->type, RedisReply::Type::kStatus);
  auto again = Exec(io, *c, {"SET", "k", "w", "NX", "EX", "60"});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->nil());  // NX: the first writer holds the key
  auto get = Exec(io, *c, {"GET", "k"});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->str, "v");
  auto incr = Exec(io, *c, {"HINCRBY", "h", "f", "3"});
  ASSERT_TRUE(incr.ok());
  EXPECT_EQ(incr->integer, 3);
  auto all = Exec(io, *c, {"HGETALL", "h"});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->elements.size(), 2u);
  EXPECT_EQ(all->elements[1].str, "3");
  auto error = Exec(io, *c, {"INCR", "k"});  // not an integer
  EXPECT_EQ(error.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RedisClientTest, PipelinedCallsAnswerInOrder) {
  RedisServer server;
  asio::io_context io;
  auto c = Connected(io, Options(server.port()));
  ASSERT_NE(c, nullptr);
  std::vector<int64_t> seen;
  for (int i = 0; i < 100; ++i) {
    c->Command({"INCR", "n"}, [&](absl::StatusOr<RedisReply> r) { seen.push_back(r->integer); });
  }
  ASSERT_TRUE(RunUntil(io, [&] { return seen.size() == 100; }));
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(seen[i], i + 1);
}

TEST(RedisClientTest, CallsFailAtOnceWhileDisconnected) {
  asio::io_context io;
  auto c = RedisClient::Create(io, Options(FreePort()));  // nothing listens there
  c->Start();
  std::optional<absl::Status> status;
  c->Command({"PING"}, [&](absl::StatusOr<RedisReply> r) { status = r.status(); });
  ASSERT_TRUE(status.has_value());  // answered synchronously, not queued
  EXPECT_EQ(status->code(), absl::StatusCode::kUnavailable);
}

TEST(RedisClientTest, ReconnectsAfterTheServerComesBack) {
  uint16_t port = FreePort();
  auto server = std::make_unique<RedisServer>(port);
  asio::io_context io;
  auto c = RedisClient::Create(io, Options(port));
  int connects = 0, losses = 0;
  c->OnConnect([&] { ++connects; });
  c->OnDisconnect([&] { ++losses; });
  c->Start();
  ASSERT_TRUE(RunUntil(io, [&] { return connects == 1; }));
  server->Stop();
  ASSERT_TRUE(RunUntil(io, [&] { return losses == 1; }));
  EXPECT_FALSE(c->connected());
  server = std::make_unique<RedisServer>(port);
  ASSERT_TRUE(RunUntil(
      io, [&] { return connects == 2; }, std::chrono::seconds(8)));
  EXPECT_TRUE(Exec(io, *c, {"PING"}).ok());
}

TEST(RedisClientTest, AStuckCallTimesOutAndTheClientReconnects) {
  RedisServer server;
  asio::io_context io;
  auto c = RedisClient::Create(io, Options(server.port()));
  int connects = 0;
  c->OnConnect([&] { ++connects; });
  c->Start();
  ASSERT_TRUE(RunUntil(io, [&] { return connects == 1; }));
  server.Freeze();
  auto slow = Exec(io, *c, {"PING"});
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(c->connected());  // a stuck connection is dropped
  server.Thaw();
  ASSERT_TRUE(RunUntil(
      io, [&] { return connects == 2; }, std::chrono::seconds(8)));
  EXPECT_TRUE(Exec(io, *c, {"PING"}).ok());
}

// The header promises each callback once, and nothing forbids stopping the client from one.
TEST(RedisClientTest, ACallbackMayStopTheClient) {
  RedisServer server;
  asio::io_context io;
  auto c = RedisClient::Create(io, Options(server.port()));
  c->Start();
  ASSERT_TRUE(RunUntil(io, [&] { return c->connected(); }));
  server.Freeze();
  // The first times out, its callback stops the client; the second is answered by the stop.
  std::vector<absl::StatusCode> codes;
  c->Command({"PING"}, [&](absl::StatusOr<RedisReply> r) {
    codes.push_back(r.status().code());
    c->Stop();
  });
  c->Command({"PING"}, [&](absl::StatusOr<RedisReply> r) { codes.push_back(r.status().code()); });
  ASSERT_TRUE(RunUntil(io, [&] { return codes.size() == 2; }));
  server.Thaw();
  EXPECT_EQ(codes[0], absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(codes[1], absl::StatusCode::kUnavailable);
  EXPECT_FALSE(c->connected());
}

// A server that answers the handshake's PING, then closes each connection: the client backs off
// further at each reconnect rather than starting again at every handshake.
TEST(RedisClientTest, BacksOffFromAServerThatDropsEveryConnection) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  std::vector<std::chrono::steady_clock::time_point> accepted;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          asio::ip::tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
          accepted.push_back(std::chrono::steady_clock::now());
          std::array<char, 64> request;
          co_await s.async_read_some(asio::buffer(request), asio::use_awaitable);
          std::string_view pong = "+PONG\r\n";
          co_await asio::async_write(s, asio::buffer(pong), asio::use_awaitable);
        }
      },
      asio::detached);
  auto c = RedisClient::Create(io, Options(acceptor.local_endpoint().port()));
  int connects = 0;
  c->OnConnect([&] { ++connects; });
  c->Start();
  // Each connection counts as made: the handshake went through.
  ASSERT_TRUE(RunUntil(io, [&] { return connects == 4; }));
  ASSERT_EQ(accepted.size(), 4u);
  // Timers never fire early: the waits are at least 100, 200 and 400 ms.
  EXPECT_GE(accepted[1] - accepted[0], std::chrono::milliseconds(100));
  EXPECT_GE(accepted[2] - accepted[1], std::chrono::milliseconds(200));
  EXPECT_GE(accepted[3] - accepted[2], std::chrono::milliseconds(400));
}

TEST(RedisClientTest, SubscriberReceivesAndResubscribesAfterReconnect) {
  uint16_t port = FreePort();
  auto server = std::make_unique<RedisServer>(port);
  asio::io_context io;
  auto pub = RedisClient::Create(io, Options(port));
  auto sub = RedisClient::Create(io, Options(port));
  std::vector<std::string> got;
  sub->Subscribe("events", [&](std::string_view, std::string_view m) { got.emplace_back(m); });
  pub->Start();
  sub->Start();
  ASSERT_TRUE(RunUntil(io, [&] { return pub->connected() && sub->connected(); }));
  // Publish until the subscription is in place (PUBLISH returns the receiver count).
  ASSERT_TRUE(RunUntil(io, [&] {
    return Exec(io, *pub, {"PUBLISH", "events", "one"})->integer == 1;
  }));
  ASSERT_TRUE(RunUntil(io, [&] { return !got.empty(); }));
  EXPECT_EQ(got.front(), "one");
  server->Stop();
  server = std::make_unique<RedisServer>(port);
  ASSERT_TRUE(RunUntil(
      io,
      [&] {
        auto r = Exec(io, *pub, {"PUBLISH", "events", "two"});
        return r.ok() && r->integer == 1;
      },
      std::chrono::seconds(10)));
  ASSERT_TRUE(RunUntil(io, [&] { return got.back() == "two"; }));
}

TEST(RedisClientTest, CoroutineCall) {
  RedisServer server;
  asio::io_context io;
  auto c = Connected(io, Options(server.port()));
  ASSERT_NE(c, nullptr);
  std::optional<std::string> value;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Named vectors: GCC 12 miscompiles a braced list of literals inside co_await.
        std::vector<std::string> set = {"SET", "x", "42"}, get = {"GET", "x"};
        co_await c->Call(set);
        auto r = co_await c->Call(get);
        value = r->str;
      },
      asio::detached);
  ASSERT_TRUE(RunUntil(io, [&] { return value.has_value(); }));
  EXPECT_EQ(*value, "42");
}

}  // namespace
}  // namespace state
