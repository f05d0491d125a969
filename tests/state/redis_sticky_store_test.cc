// Tests of state/redis_sticky_store.h against a real redis-server: two stores stand for two
// proxies.
#include "state/redis_sticky_store.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "tests/state/redis_server.h"

namespace state {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;

// One "proxy": an io_context, its Redis client, its store.
struct Proxy {
  Proxy(uint16_t port, std::chrono::milliseconds cache_ttl = std::chrono::milliseconds(1000),
        std::chrono::milliseconds command_timeout = std::chrono::milliseconds(500)) {
    RedisOptions o;
    o.port = port;
    o.command_timeout = command_timeout;
    client = RedisClient::Create(io, o);
    store = std::make_unique<RedisStickyStore>(
        RedisKeys("t:"), std::vector<RedisStickyStore::ThreadClient>{{&io, client}}, cache_ttl);
    client->Start();
  }
  template <typename T>
  T Await(asio::awaitable<T> a) {
    std::optional<T> result;
    asio::co_spawn(io, std::move(a), [&](std::exception_ptr, T v) { result = std::move(v); });
    RunUntil(io, [&] { return result.has_value(); });
    return *result;
  }
  std::optional<std::string> Find(const std::string& id) { return Await(store->Find("p", id)); }
  std::string Bind(const std::string& id, const std::string& b, bool nx) {
    return Await(store->Bind("p", id, b, nx, seconds(30)));
  }

  asio::io_context io;
  std::shared_ptr<RedisClient> client;
  std::unique_ptr<RedisStickyStore> store;
};

TEST(RedisStickyStoreTest, TwoProxiesAgreeOnANewClient) {
  RedisServer server;
  Proxy a(server.port()), b(server.port());
  ASSERT_TRUE(RunUntil(a.io, [&] { return a.client->connected(); }));
  ASSERT_TRUE(RunUntil(b.io, [&] { return b.client->connected(); }));
  EXPECT_EQ(a.Bind("c1", "b1", true), "b1");
  EXPECT_EQ(b.Bind("c1", "b2", true), "b1");  // b follows a
  EXPECT_EQ(b.Find("c1"), "b1");
}

TEST(RedisStickyStoreTest, OverwriteAfterFailoverReachesTheOtherProxy) {
  RedisServer server;
  Proxy a(server.port(), std::chrono::milliseconds(0)),
      b(server.port(), std::chrono::milliseconds(0));
  ASSERT_TRUE(RunUntil(a.io, [&] { return a.client->connected(); }));
  ASSERT_TRUE(RunUntil(b.io, [&] { return b.client->connected(); }));
  a.Bind("c", "b1", true);
  EXPECT_EQ(b.Find("c"), "b1");
  a.Bind("c", "b3", false);
  EXPECT_EQ(b.Find("c"), "b3");  // no cache (cache_ttl 0): straight from Redis
}

TEST(RedisStickyStoreTest, WorksFromTheCacheWhileRedisIsDownAndWritesBackAfter) {
  uint16_t port = FreePort();
  auto server = std::make_unique<RedisServer>(port);
  Proxy a(port, std::chrono::milliseconds(0)), b(port, std::chrono::milliseconds(0));
  ASSERT_TRUE(RunUntil(a.io, [&] { return a.client->connected(); }));
  a.Bind("known", "b1", true);
  server->Stop();
  ASSERT_TRUE(RunUntil(a.io, [&] { return !a.client->connected(); }));
  EXPECT_EQ(a.Find("known"), "b1");            // the cache answers
  EXPECT_EQ(a.Bind("new", "b2", true), "b2");  // bound locally
  EXPECT_EQ(a.Find("new"), "b2");
  server = std::make_unique<RedisServer>(port);  // empty: the outage lost Redis's data
  ASSERT_TRUE(RunUntil(
      a.io, [&] { return a.client->connected(); }, std::chrono::seconds(8)));
  ASSERT_TRUE(RunUntil(
      b.io, [&] { return b.client->connected(); }, std::chrono::seconds(8)));
  // The record made during the outage was written back: the other proxy sees it.
  bool seen = RunUntil(a.io, [&] { return b.Find("new") == "b2"; });
  EXPECT_TRUE(seen);
}

// Binds `records` clients ("c0", "c1", ...) on `a` while the Redis of `server` is down, then
// starts an empty Redis on the same port (with `options`) and waits until `a` is connected to it
// again.
void BindDuringAnOutage(std::unique_ptr<RedisServer>& server, Proxy& a, int records,
                        std::vector<std::string> options = {}) {
  ASSERT_TRUE(RunUntil(a.io, [&] { return a.client->connected(); }));
  uint16_t port = server->port();
  server->Stop();
  ASSERT_TRUE(RunUntil(a.io, [&] { return !a.client->connected(); }));
  // In one coroutine: Await runs the loop 10 ms at a time.
  a.Await([&]() -> asio::awaitable<int> {
    for (int i = 0; i < records; ++i) {
      co_await a.store->Bind("p", "c" + std::to_string(i), "b1", true, seconds(30));
    }
    co_return records;
  }());
  server = std::make_unique<RedisServer>(port, std::move(options));
  ASSERT_TRUE(RunUntil(
      a.io, [&] { return a.client->connected(); }, std::chrono::seconds(8)));
}

// The keys in Redis, once there are `expected`, or after 30 s.
int64_t KeysOnceThere(Proxy& a, int64_t expected) {
  int64_t keys = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (keys < expected && std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<RedisReply> r = a.Await(a.client->Call({"DBSIZE"}));
    if (r.ok()) keys = r->integer;
  }
  return keys;
}

TEST(RedisStickyStoreTest, ManyRecordsBoundDuringAnOutageAreAllWrittenBack) {
  // More than Redis writes within the command timeout: sent at once, the calls behind would time
  // out, drop the connection and lose the records not yet written.
  constexpr int kRecords = 50'000;
  auto server = std::make_unique<RedisServer>();
  Proxy a(server->port(), std::chrono::milliseconds(0), std::chrono::milliseconds(20));
  ASSERT_NO_FATAL_FAILURE(BindDuringAnOutage(server, a, kRecords));
  // Until its record is written back, a client is found in the cache, not missed in Redis.
  EXPECT_EQ(a.Find("c" + std::to_string(kRecords - 1)), "b1");
  EXPECT_EQ(KeysOnceThere(a, kRecords), kRecords);
}

TEST(RedisStickyStoreTest, AWriteBackCutShortByATimeoutGoesOnAtTheNextConnection) {
  // Redis stops answering in the middle of the write-back: the calls time out and the client
  // drops the connection, failing the rest of the batch at once. What was not written goes at
  // the next connection.
  constexpr int kRecords = 5'000;
  auto server = std::make_unique<RedisServer>();
  Proxy a(server->port(), std::chrono::milliseconds(0), std::chrono::milliseconds(50));
  ASSERT_NO_FATAL_FAILURE(BindDuringAnOutage(server, a, kRecords));
  server->Freeze();
  ASSERT_TRUE(RunUntil(a.io, [&] { return !a.client->connected(); }));
  server->Thaw();
  EXPECT_EQ(KeysOnceThere(a, kRecords), kRecords);
}

TEST(RedisStickyStoreTest, AWriteBackRefusedByARedisThatStaysConnectedGoesAgain) {
  // The Redis that comes back is out of memory (maxmemory 1 byte, no eviction): it refuses every
  // write with an error reply and keeps the connection. Once it has room, the records go.
  constexpr int kRecords = 1'000;
  auto server = std::make_unique<RedisServer>();
  Proxy a(server->port(), std::chrono::milliseconds(0));
  ASSERT_NO_FATAL_FAILURE(BindDuringAnOutage(
      server, a, kRecords, {"--maxmemory", "1", "--maxmemory-policy", "noeviction"}));
  absl::StatusOr<RedisReply> refused =
      a.Await(a.client->Call({"SET", "probe", "x"}));  // behind the write-back's first batch
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_EQ(a.Find("c0"), "b1");  // meanwhile from the cache
  ASSERT_TRUE(a.Await(a.client->Call({"CONFIG", "SET", "maxmemory", "0"})).ok());
  EXPECT_EQ(KeysOnceThere(a, kRecords), kRecords);
  EXPECT_TRUE(a.client->connected());
}

TEST(RedisStickyStoreTest, ABindingRefusedByARedisThatStaysConnectedGoesAgain) {
  RedisServer server(FreePort(), {"--maxmemory", "1", "--maxmemory-policy", "noeviction"});
  Proxy a(server.port(), std::chrono::milliseconds(0));
  ASSERT_TRUE(RunUntil(a.io, [&] { return a.client->connected(); }));
  EXPECT_EQ(a.Bind("c0", "b1", true), "b1");  // refused by Redis, kept in the cache
  ASSERT_TRUE(a.Await(a.client->Call({"CONFIG", "SET", "maxmemory", "0"})).ok());
  EXPECT_EQ(KeysOnceThere(a, 1), 1);
}

TEST(RedisStickyStoreTest, RecordsExpire) {
  RedisServer server;
  Proxy a(server.port(), std::chrono::milliseconds(0));
  ASSERT_TRUE(RunUntil(a.io, [&] { return a.client->connected(); }));
  a.Await(a.store->Bind("p", "short", "b1", true, seconds(1)));
  EXPECT_EQ(a.Find("short"), "b1");
  EXPECT_TRUE(RunUntil(
      a.io, [&] { return !a.Find("short").has_value(); }, std::chrono::seconds(4)));
}

}  // namespace
}  // namespace state
