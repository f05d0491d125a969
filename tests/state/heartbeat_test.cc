// Tests of state/heartbeat.h against a real redis-server: the stamp's units, the liveness window
// and what is forgotten. That the stamp is Redis's time whatever the caller's clock says needs a
// process on another clock: the libfaketime integration tests (test_cluster.py, test_tier.py).
#include "state/heartbeat.h"

#include <gtest/gtest.h>

#include <charconv>

#include "tests/state/redis_server.h"

namespace state {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

int64_t ToInt(const std::string& s) {
  int64_t n = 0;
  std::from_chars(s.data(), s.data() + s.size(), n);
  return n;
}

// Redis's clock, in milliseconds since the epoch.
int64_t RedisNowMs(asio::io_context& io, RedisClient& c) {
  absl::StatusOr<RedisReply> t = Exec(io, c, {"TIME"});
  EXPECT_TRUE(t.ok() && t->elements.size() == 2);
  if (!t.ok() || t->elements.size() != 2) return 0;
  return ToInt(t->elements[0].str) * 1000 + ToInt(t->elements[1].str) / 1000;
}

std::vector<std::string> Members(const absl::StatusOr<RedisReply>& r) {
  std::vector<std::string> out;
  if (r.ok()) {
    for (const RedisReply& e : r->elements)
      out.push_back(e.str);
  }
  return out;
}

using HeartbeatTest = WithRedis;

TEST_F(HeartbeatTest, StampsWithRedissClock) {
  int64_t before = RedisNowMs(io, *c);
  auto live = Exec(io, *c, HeartbeatCommand("hb", "me", milliseconds(1000)));
  int64_t after = RedisNowMs(io, *c);
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(Members(live), std::vector<std::string>{"me"});
  auto score = Exec(io, *c, {"ZSCORE", "hb", "me"});
  ASSERT_TRUE(score.ok());
  int64_t stamp = static_cast<int64_t>(std::stod(score->str));
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);
}

TEST_F(HeartbeatTest, OnlyMembersHeardWithinTheWindowAreLive) {
  // Stamps as other members' beats left them, on Redis's clock: one 200 ms ago, one 2 s ago, one
  // a minute and a half ago.
  int64_t now = RedisNowMs(io, *c);
  ASSERT_TRUE(Exec(io, *c,
                   {"ZADD", "hb", std::to_string(now - 200), "recent", std::to_string(now - 2'000),
                    "silent", std::to_string(now - 90'000), "gone"})
                  .ok());
  auto live = Exec(io, *c, HeartbeatCommand("hb", "me", milliseconds(1000)));
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(Members(live), (std::vector<std::string>{"recent", "me"}));
  // Silent past the window: not live, but kept; silent for over a minute: removed.
  EXPECT_FALSE(Exec(io, *c, {"ZSCORE", "hb", "silent"})->nil());
  EXPECT_TRUE(Exec(io, *c, {"ZSCORE", "hb", "gone"})->nil());
}

TEST_F(HeartbeatTest, AMemberWhoseRunWasReplacedIsNotStamped) {
  ASSERT_TRUE(Exec(io, *c, {"SET", "fence", "run1 other"}).ok());
  auto fenced =
      Exec(io, *c, HeartbeatCommand("hb", "me", milliseconds(1000), Fence{"fence", "run1"}));
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(fenced->type, RedisReply::Type::kString);
  EXPECT_EQ(fenced->str, "run1 other");
  EXPECT_TRUE(Exec(io, *c, {"ZSCORE", "hb", "me"})->nil());
  // Another run of the same member (a restart), or a prefix of the run's name: it beats.
  for (const char* run : {"run2", "run"}) {
    auto live = Exec(io, *c, HeartbeatCommand("hb", "me", milliseconds(1000), Fence{"fence", run}));
    ASSERT_TRUE(live.ok()) << live.status();
    EXPECT_EQ(Members(live), std::vector<std::string>{"me"}) << run;
  }
  // No fence at all.
  ASSERT_TRUE(Exec(io, *c, {"DEL", "fence"}).ok());
  auto live =
      Exec(io, *c, HeartbeatCommand("hb", "me", milliseconds(1000), Fence{"fence", "run1"}));
  EXPECT_EQ(Members(live), std::vector<std::string>{"me"});
}

}  // namespace
}  // namespace state
