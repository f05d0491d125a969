// Tests of state/redis_tier_state.h against a real redis-server: three instances stand for three
// proxies sharing counts, health and operator changes.
#include "state/redis_tier_state.h"

#include <gtest/gtest.h>

#include "state/local_tier_state.h"
#include "tests/state/redis_server.h"

namespace state {
namespace {

namespace asio = boost::asio;

struct Instance {
  Instance(asio::io_context& io, uint16_t port, std::string id,
           std::chrono::milliseconds liveness = std::chrono::milliseconds(3000),
           std::optional<std::string> user = std::nullopt) {
    RedisOptions o;
    o.port = port;
    if (user) {
      o.username = user;
      o.password = "secret";
    }
    client = RedisClient::Create(io, o);
    tier = std::make_unique<RedisTierState>(client, RedisKeys("t:"), id, liveness);
    tier->on_view = [this](const TierView& v) {
      view = v;
      ++views;
    };
    client->Start();
  }
  std::shared_ptr<RedisClient> client;
  std::unique_ptr<RedisTierState> tier;
  TierView view;
  int views = 0;
};

// Reports from every instance until `done` holds.
bool Converge(asio::io_context& io, std::vector<Instance*> all,
              const std::vector<std::vector<LocalReport>>& reports,
              const std::function<bool()>& done) {
  return RunUntil(
      io,
      [&] {
        for (size_t i = 0; i < all.size(); ++i)
          all[i]->tier->Report(reports[i]);
        io.run_for(std::chrono::milliseconds(20));
        return done();
      },
      std::chrono::seconds(6));
}

TEST(RedisTierStateTest, CountsAreSummedOverTheOtherProxies) {
  RedisServer server;
  asio::io_context io;
  Instance a(io, server.port(), "a"), b(io, server.port(), "b"), c(io, server.port(), "c");
  ASSERT_TRUE(RunUntil(
      io, [&] { return a.client->connected() && b.client->connected() && c.client->connected(); }));
  std::vector<std::vector<LocalReport>> reports = {{{"p/b1", 5, true}, {"p/b2", 1, true}},
                                                   {{"p/b1", 2, true}, {"p/b2", 0, true}},
                                                   {{"p/b1", 1, true}, {"p/b2", 7, true}}};
  ASSERT_TRUE(Converge(io, {&a, &b, &c}, reports, [&] {
    return a.view.live_proxies == 3 && a.view.backends["p/b1"].remote_active == 3 &&
           a.view.backends["p/b2"].remote_active == 7;
  }));
  EXPECT_EQ(c.view.backends["p/b1"].remote_active, 7);  // a's 5 + b's 2, not its own
}

TEST(RedisTierStateTest, ADeadProxysCountsExpire) {
  RedisServer server;
  asio::io_context io;
  auto liveness = std::chrono::milliseconds(500);
  Instance a(io, server.port(), "a", liveness);
  auto b = std::make_unique<Instance>(io, server.port(), "b", liveness);
  ASSERT_TRUE(RunUntil(io, [&] { return a.client->connected() && b->client->connected(); }));
  ASSERT_TRUE(Converge(io, {&a, b.get()}, {{{"p/x", 0, true}}, {{"p/x", 9, true}}},
                       [&] { return a.view.backends["p/x"].remote_active == 9; }));
  b.reset();  // "b" stops reporting, as a killed proxy does
  ASSERT_TRUE(Converge(io, {&a}, {{{"p/x", 0, true}}}, [&] {
    return a.view.live_proxies == 1 && a.view.backends["p/x"].remote_active == 0;
  }));
}

TEST(RedisTierStateTest, HealthVotesAndPolicy) {
  RedisServer server;
  asio::io_context io;
  Instance a(io, server.port(), "a"), b(io, server.port(), "b"), c(io, server.port(), "c");
  ASSERT_TRUE(RunUntil(
      io, [&] { return a.client->connected() && b.client->connected() && c.client->connected(); }));
  ASSERT_TRUE(
      Converge(io, {&a, &b, &c}, {{{"p/x", 0, true}}, {{"p/x", 0, false}}, {{"p/x", 0, true}}},
               [&] { return a.view.live_proxies == 3 && a.view.backends["p/x"].down_votes == 1; }));
  const auto& v = a.view.backends["p/x"];
  EXPECT_TRUE(DownForAll(HealthPolicy::kAny, v.down_votes, false, a.view.live_proxies));
  EXPECT_FALSE(DownForAll(HealthPolicy::kMajority, v.down_votes, false, a.view.live_proxies));
  EXPECT_TRUE(DownForAll(HealthPolicy::kMajority, v.down_votes, true, a.view.live_proxies));
}

TEST(RedisTierStateTest, OperatorChangesReachOthersAndOutliveTheProxy) {
  RedisServer server;
  asio::io_context io;
  auto a = std::make_unique<Instance>(io, server.port(), "a");
  Instance b(io, server.port(), "b");
  ASSERT_TRUE(RunUntil(io, [&] { return a->client->connected() && b.client->connected(); }));
  a->tier->SetOperator("p/x", {.draining = true, .weight = 3});
  ASSERT_TRUE(Converge(io, {a.get(), &b}, {{}, {}}, [&] {
    return b.view.operators.contains("p/x") && b.view.operators["p/x"].draining;
  }));
  EXPECT_EQ(b.view.operators["p/x"].weight, 3u);
  a.reset();
  Instance again(io, server.port(), "a");  // a restarted proxy reads them back
  ASSERT_TRUE(RunUntil(io, [&] { return again.client->connected(); }));
  ASSERT_TRUE(Converge(io, {&again}, {{}}, [&] { return again.view.operators.contains("p/x"); }));
  EXPECT_TRUE(again.view.operators["p/x"].draining);
}

TEST(RedisTierStateTest, ARoundReadBeforeAnOperatorChangeDoesNotUndoIt) {
  // The operator change is made here while a round is in flight: the round's read of the
  // operators went to Redis ahead of the change's write and answers with the state before it.
  RedisServer server;
  asio::io_context io;
  Instance a(io, server.port(), "a");
  ASSERT_TRUE(RunUntil(io, [&] { return a.client->connected(); }));
  a.tier->Report({});
  a.tier->SetOperator("p/x", {.draining = true});
  ASSERT_TRUE(RunUntil(io, [&] { return a.views == 1; }));
  ASSERT_TRUE(a.view.operators.contains("p/x"));
  EXPECT_TRUE(a.view.operators["p/x"].draining);
  // Changed back the same way: the next round does not bring the drain back either.
  a.tier->Report({});
  a.tier->SetOperator("p/x", {.draining = false});
  ASSERT_TRUE(RunUntil(io, [&] { return a.views == 2; }));
  EXPECT_FALSE(a.view.operators["p/x"].draining);
  // Once a read has seen the change, Redis has the last word: another proxy's later change
  // reaches this one.
  Instance b(io, server.port(), "b");
  ASSERT_TRUE(RunUntil(io, [&] { return b.client->connected(); }));
  b.tier->SetOperator("p/x", {.draining = true});
  EXPECT_TRUE(Converge(io, {&a, &b}, {{}, {}}, [&] { return a.view.operators["p/x"].draining; }));
}

TEST(RedisTierStateTest, OperatorChangesWhileRedisIsDownAreSentWhenItReturns) {
  uint16_t port = FreePort();
  auto server = std::make_unique<RedisServer>(port);
  asio::io_context io;
  Instance a(io, port, "a"), b(io, port, "b");
  ASSERT_TRUE(RunUntil(io, [&] { return a.client->connected() && b.client->connected(); }));
  server->Stop();
  ASSERT_TRUE(RunUntil(io, [&] { return !a.client->connected(); }));
  EXPECT_TRUE(a.tier->degraded());
  a.tier->SetOperator("p/y", {.draining = true});
  server = std::make_unique<RedisServer>(port);
  ASSERT_TRUE(RunUntil(
      io, [&] { return a.client->connected() && b.client->connected(); }, std::chrono::seconds(8)));
  ASSERT_TRUE(Converge(io, {&a, &b}, {{}, {}}, [&] { return b.view.operators.contains("p/y"); }));
}

// Connected, but every round answered with an error (here WRONGTYPE; in life READONLY after a
// failover, or OOM): degraded, as when unreachable, so that the proxy stops trusting its last
// view; and no longer once the rounds go through again.
TEST(RedisTierStateTest, RoundsFailingOnAConnectedRedisDegrade) {
  RedisServer server;
  asio::io_context io;
  Instance a(io, server.port(), "a");
  auto admin = Connected(io, [&] {
    RedisOptions o;
    o.port = server.port();
    return o;
  }());
  ASSERT_NE(admin, nullptr);
  ASSERT_TRUE(Converge(io, {&a}, {{}}, [&] { return a.views > 0; }));
  EXPECT_FALSE(a.tier->degraded());
  ASSERT_TRUE(Exec(io, *admin, {"SET", "t:proxies", "not a sorted set"}).ok());
  ASSERT_TRUE(Converge(io, {&a}, {{}}, [&] { return a.tier->degraded(); }));
  EXPECT_TRUE(a.client->connected());
  int views = a.views;
  ASSERT_TRUE(Exec(io, *admin, {"DEL", "t:proxies"}).ok());
  ASSERT_TRUE(Converge(io, {&a}, {{}}, [&] { return !a.tier->degraded(); }));
  EXPECT_GT(a.views, views);
}

// a loses Redis (its user disabled, its connection killed) while b keeps it. a drains p/x, b
// then sets a weight on it: when a is back, its change is not written over b's later one.
TEST(RedisTierStateTest, AChangeMadeWhileCutOffGivesWayToALaterOneFromAnotherProxy) {
  RedisServer server;
  asio::io_context io;
  auto admin = Connected(io, [&] {
    RedisOptions o;
    o.port = server.port();
    return o;
  }());
  ASSERT_NE(admin, nullptr);
  ASSERT_TRUE(Exec(io, *admin, {"ACL", "SETUSER", "a", "on", ">secret", "~*", "+@all"}).ok());
  Instance a(io, server.port(), "a", std::chrono::milliseconds(3000), "a");
  Instance b(io, server.port(), "b");
  ASSERT_TRUE(RunUntil(io, [&] { return a.client->connected() && b.client->connected(); }));
  b.tier->SetOperator("p/x", {.weight = 2});
  ASSERT_TRUE(
      Converge(io, {&a, &b}, {{}, {}}, [&] { return a.view.operators["p/x"].weight == 2u; }));

  ASSERT_TRUE(Exec(io, *admin, {"ACL", "SETUSER", "a", "off"}).ok());
  ASSERT_TRUE(Exec(io, *admin, {"CLIENT", "KILL", "USER", "a"}).ok());
  ASSERT_TRUE(RunUntil(io, [&] { return !a.client->connected(); }));
  a.tier->SetOperator("p/x", {.draining = true, .weight = 2});  // unsent
  b.tier->SetOperator("p/x", {.weight = 5});                    // later, and written
  ASSERT_TRUE(Converge(io, {&b}, {{}}, [&] { return b.view.operators["p/x"].weight == 5u; }));

  ASSERT_TRUE(Exec(io, *admin, {"ACL", "SETUSER", "a", "on"}).ok());
  ASSERT_TRUE(RunUntil(
      io, [&] { return a.client->connected(); }, std::chrono::seconds(8)));
  ASSERT_TRUE(Converge(io, {&a, &b}, {{}, {}}, [&] {
    return a.view.operators["p/x"].weight == 5u && !a.view.operators["p/x"].draining;
  }));
  EXPECT_EQ(Exec(io, *admin, {"HGET", "t:operator", "p/x"})->str, "draining=0 weight=5");
}

TEST(RedisTierStateTest, OperatorEncoding) {
  OperatorState s{.draining = true, .weight = 7};
  EXPECT_EQ(RedisTierState::EncodeOperator(s), "draining=1 weight=7");
  EXPECT_EQ(RedisTierState::DecodeOperator("draining=1 weight=7"), s);
  EXPECT_EQ(RedisTierState::DecodeOperator("draining=0"), OperatorState{});
}

TEST(LocalTierStateTest, AloneThereAreNoOthers) {
  LocalTierState t;
  TierView seen;
  t.on_view = [&](const TierView& v) { seen = v; };
  t.SetOperator("p/x", {.draining = true});
  t.Report({{"p/x", 4, true}});
  EXPECT_EQ(seen.live_proxies, 1u);
  EXPECT_EQ(seen.backends["p/x"].remote_active, 0);
  EXPECT_TRUE(seen.operators["p/x"].draining);
  EXPECT_FALSE(t.degraded());
}

}  // namespace
}  // namespace state
