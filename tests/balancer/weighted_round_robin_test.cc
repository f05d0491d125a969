// Tests of balancer/weighted_round_robin.h.
#include "balancer/weighted_round_robin.h"

#include <gtest/gtest.h>

#include "tests/balancer/pool_fixture.h"

namespace balancer {
namespace {

std::string Sequence(WeightedRoundRobin& s, TestPool& pool, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += static_cast<char>('a' + *s.Pick(pool.view(), "", {}));
  return out;
}

TEST(WeightedRoundRobinTest, NginxSequenceForFiveOneOne) {
  TestPool pool({5, 1, 1});
  WeightedRoundRobin s;
  EXPECT_EQ(Sequence(s, pool, 14), "aabacaaaabacaa");
}

TEST(WeightedRoundRobinTest, EqualWeightsRotate) {
  TestPool pool({1, 1, 1});
  WeightedRoundRobin s;
  EXPECT_EQ(Sequence(s, pool, 6), "abcabc");
}

TEST(WeightedRoundRobinTest, SpreadFollowsWeights) {
  TestPool pool({3, 2, 1});
  WeightedRoundRobin s;
  auto counts = pool.Spread(s, 600);
  EXPECT_EQ(counts[0], 300);
  EXPECT_EQ(counts[1], 200);
  EXPECT_EQ(counts[2], 100);
}

TEST(WeightedRoundRobinTest, SkipsIneligibleAndExcluded) {
  TestPool pool({1, 1, 1});
  pool[1].eligible = false;
  WeightedRoundRobin s;
  EXPECT_EQ(Sequence(s, pool, 4), "acac");
  bool exclude[] = {true, false, false};
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(s.Pick(pool.view(), "", exclude), 2u);
}

TEST(WeightedRoundRobinTest, EmptyAndAllDownGiveNothing) {
  TestPool empty({});
  WeightedRoundRobin s;
  EXPECT_FALSE(s.Pick(empty.view(), "", {}).has_value());
  TestPool pool({1, 1});
  pool[0].eligible = false;
  pool[1].eligible = false;
  EXPECT_FALSE(s.Pick(pool.view(), "", {}).has_value());
}

TEST(WeightedRoundRobinTest, SingleBackendAlways) {
  TestPool pool({7});
  WeightedRoundRobin s;
  EXPECT_EQ(Sequence(s, pool, 3), "aaa");
}

}  // namespace
}  // namespace balancer
