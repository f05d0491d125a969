// Tests of balancer/least_connections.h.
#include "balancer/least_connections.h"

#include <gtest/gtest.h>

#include "tests/balancer/pool_fixture.h"

namespace balancer {
namespace {

// Picks `n` times, each pick adding a connection to the chosen backend, as the proxy does.
std::vector<uint64_t> Fill(LeastConnections& s, TestPool& pool, int n) {
  for (int i = 0; i < n; ++i) {
    size_t pick = *s.Pick(pool.view(), "", {});
    ++pool[pick].active;
  }
  std::vector<uint64_t> active;
  for (size_t i = 0; i < pool.size(); ++i)
    active.push_back(pool[i].active);
  return active;
}

TEST(LeastConnectionsTest, EqualWeightsStayWithinOne) {
  TestPool pool({1, 1, 1});
  LeastConnections s;
  EXPECT_EQ(Fill(s, pool, 300), (std::vector<uint64_t>{100, 100, 100}));
}

TEST(LeastConnectionsTest, UnequalWeightsFollowWeights) {
  TestPool pool({3, 2, 1});
  LeastConnections s;
  EXPECT_EQ(Fill(s, pool, 600), (std::vector<uint64_t>{300, 200, 100}));
}

TEST(LeastConnectionsTest, PrefersTheLeastLoaded) {
  TestPool pool({1, 1, 1});
  pool[0].active = 10;
  pool[1].active = 3;
  pool[2].active = 7;
  LeastConnections s;
  EXPECT_EQ(s.Pick(pool.view(), "", {}), 1u);
}

TEST(LeastConnectionsTest, TiesAreBrokenRoundRobin) {
  TestPool pool({1, 1, 1});
  LeastConnections s;
  // Without adding connections, every pick is a tie: they must rotate, not stick to b0.
  EXPECT_EQ(s.Pick(pool.view(), "", {}), 0u);
  EXPECT_EQ(s.Pick(pool.view(), "", {}), 1u);
  EXPECT_EQ(s.Pick(pool.view(), "", {}), 2u);
  EXPECT_EQ(s.Pick(pool.view(), "", {}), 0u);
}

TEST(LeastConnectionsTest, TiesSkipADownBackendWithoutFavouringItsNeighbour) {
  TestPool pool({1, 1, 1});
  pool[0].eligible = false;
  LeastConnections s;
  std::string picks;
  for (int i = 0; i < 6; ++i)
    picks += static_cast<char>('a' + *s.Pick(pool.view(), "", {}));
  EXPECT_EQ(picks, "bcbcbc");
}

TEST(LeastConnectionsTest, SkipsIneligibleAndExcluded) {
  TestPool pool({1, 1, 1});
  pool[0].eligible = false;
  pool[2].active = 100;
  LeastConnections s;
  bool exclude[] = {false, true, false};
  EXPECT_EQ(s.Pick(pool.view(), "", exclude), 2u);
  EXPECT_EQ(s.Pick(pool.view(), "", {}), 1u);
}

TEST(LeastConnectionsTest, EmptyGivesNothing) {
  TestPool pool({});
  LeastConnections s;
  EXPECT_FALSE(s.Pick(pool.view(), "", {}).has_value());
}

}  // namespace
}  // namespace balancer
