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
  // b is gone: a's next round replaces b's value, the one after its own.
  Round(a);
  EXPECT_TRUE(a.shared());
  Round(a);
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
