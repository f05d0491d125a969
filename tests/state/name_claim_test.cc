// Tests of state/name_claim.h against a real redis-server: two runs under one name see each
// other, a restart does not count as one.
#include "state/name_claim.h"

#include <gtest/gtest.h>

#include "tests/state/redis_server.h"

namespace state {
namespace {

using std::chrono::milliseconds;

class NameClaimTest : public WithRedis {
 protected:
  void Round(NameClaim& claim) { claim.Replied(Exec(io, *c, claim.Command())); }
};

TEST_F(NameClaimTest, ARunAloneIsNotShared) {
  NameClaim a("node", "n1", "run:node:n1", milliseconds(3000));
  for (int i = 0; i < 3; ++i) {
    Round(a);
    EXPECT_FALSE(a.shared()) << "round " << i;
  }
  EXPECT_EQ(Exec(io, *c, {"GET", "run:node:n1"})->str, a.run());
  EXPECT_GT(Exec(io, *c, {"PTTL", "run:node:n1"})->integer, 0);
}

TEST_F(NameClaimTest, TwoRunsUnderOneNameSeeEachOther) {
  NameClaim a("node", "n1", "run:node:n1", milliseconds(3000));
  NameClaim b("node", "n1", "run:node:n1", milliseconds(3000));
  EXPECT_NE(a.run(), b.run());
  Round(a);
  Round(b);  // its first round: the value it replaced may be its predecessor's
  EXPECT_FALSE(b.shared());
  Round(a);
  EXPECT_TRUE(a.shared());
  Round(b);
  EXPECT_TRUE(b.shared());
}

TEST_F(NameClaimTest, SharedUntilTheOtherRunIsSilentForTheTtl) {
  NameClaim a("proxy instance", "p", "run:proxy:p", milliseconds(3000));
  NameClaim b("proxy instance", "p", "run:proxy:p", milliseconds(3000));
  auto t0 = std::chrono::steady_clock::now();
  auto round = [&](NameClaim& claim, milliseconds at) {
    claim.Replied(Exec(io, *c, claim.Command()), t0 + at);
  };
  round(a, milliseconds(0));
  round(b, milliseconds(0));
  round(a, milliseconds(100));
  ASSERT_TRUE(a.shared());
  // a beats twice as often as b: every other round finds its own value, and it stays shared.
  for (int i = 0; i < 5; ++i) {
    round(a, milliseconds(200 + 200 * i));
    EXPECT_TRUE(a.shared()) << i;
    round(b, milliseconds(250 + 200 * i));
    round(a, milliseconds(300 + 200 * i));
    EXPECT_TRUE(a.shared()) << i;
  }
  // b's last write was at 1,050 ms: a is alone again once 3 s have passed since it saw it.
  round(a, milliseconds(1'200));
  round(a, milliseconds(4'000));
  EXPECT_TRUE(a.shared());
  round(a, milliseconds(4'200));
  EXPECT_FALSE(a.shared());
}

TEST_F(NameClaimTest, ARestartFindsItsPredecessorOnceAndDoesNotCountIt) {
  {
    NameClaim before("proxy instance", "p", "run:proxy:p", milliseconds(3000));
    Round(before);
    Round(before);
  }
  NameClaim after("proxy instance", "p", "run:proxy:p", milliseconds(3000));
  Round(after);
  EXPECT_FALSE(after.shared());
  Round(after);
  EXPECT_FALSE(after.shared());
}

TEST_F(NameClaimTest, AFailedRoundSaysNothing) {
  NameClaim a("node", "n1", "run:node:n1", milliseconds(3000));
  Round(a);
  ASSERT_TRUE(Exec(io, *c, {"SET", "run:node:n1", "someone"}).ok());
  a.Replied(absl::UnavailableError("gone"));
  EXPECT_FALSE(a.shared());
  Round(a);
  EXPECT_TRUE(a.shared());
}

}  // namespace
}  // namespace state
