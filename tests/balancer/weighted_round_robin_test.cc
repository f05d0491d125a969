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

TEST(WeightedRoundRobinTest, ThreadsShareOneRotation) {
  // Two instances (two I/O threads) taking the pool's turns in any interleaving pick together
  // what one instance picks alone.
  TestPool pool({5, 1, 1});
  WeightedRoundRobin one;
  WeightedRoundRobin two;
  std::string out;
  for (int i = 0; i < 21; ++i) {
    WeightedRoundRobin& s = (i % 3 == 0 || i % 5 == 0) ? two : one;
    out += static_cast<char>('a' + *s.Pick(pool.view(), "", {}));
  }
  EXPECT_EQ(out, "aabacaaaabacaaaabacaa");
}

TEST(WeightedRoundRobinTest, CatchesUpAfterALongAbsence) {
  // An instance that last picked thousands of turns ago joins the rotation where it stands.
  TestPool pool({2, 1});
  WeightedRoundRobin busy;
  WeightedRoundRobin idle;
  EXPECT_EQ(*idle.Pick(pool.view(), "", {}), 0u);  // turn 0: a
  for (int turn = 1; turn <= 3001; ++turn)
    busy.Pick(pool.view(), "", {});
  // The period is "aba". Turn 3002 is the third of one: a (its own next step, turn 1's, is b).
  EXPECT_EQ(*idle.Pick(pool.view(), "", {}), 0u);
  EXPECT_EQ(*busy.Pick(pool.view(), "", {}), 0u);  // turns 3003, 3004: a b
  EXPECT_EQ(*busy.Pick(pool.view(), "", {}), 1u);
}

TEST(WeightedRoundRobinTest, ChangedWeightsTakeEffectWithoutNewGeneration) {
  // The instance caches the weights it derived its rotation from; a thread may read slow start's
  // next tenth before the generation changes. The spread follows the new weights.
  TestPool pool({1, 1});
  WeightedRoundRobin s;
  EXPECT_EQ(pool.Spread(s, 10), (std::map<size_t, int>{{0, 5}, {1, 5}}));
  PoolView v = pool.view();
  std::vector<BackendView> raised(v.backends.begin(), v.backends.end());
  raised[1].weight = 3;
  std::map<size_t, int> counts;
  for (uint64_t turn = v.turn; turn < v.turn + 400; ++turn)
    ++counts[*s.Pick({raised, v.generation, turn}, "", {})];
  EXPECT_EQ(counts, (std::map<size_t, int>{{0, 100}, {1, 300}}));
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

TEST(WeightedRoundRobinTest, RetriesRotateOverTheRestWithoutTakingTurns) {
  TestPool pool({1, 1, 1});
  WeightedRoundRobin s;
  PoolView first = pool.view();
  EXPECT_EQ(s.Pick(first, "", {}), 0u);
  // a failed, three times over: its retries go to b and c in turn, on the same turn.
  bool tried_a[] = {true, false, false};
  PoolView retry = first;
  retry.retry = true;
  std::string retries;
  for (int i = 0; i < 3; ++i)
    retries += static_cast<char>('a' + *s.Pick(retry, "", tried_a));
  EXPECT_EQ(retries, "bcb");
  // The pool's rotation goes on after a: b c a b.
  EXPECT_EQ(Sequence(s, pool, 4), "bcab");
}

TEST(WeightedRoundRobinTest, AFullBackendLeavesThePoolsRotationShared) {
  // Two instances (threads) take the pool's turns while b is full: each turn that falls on b
  // goes to the others in a rotation of their own, and the others' turns stay the pool's.
  TestPool pool({1, 1, 1});
  bool full_b[] = {false, true, false};
  WeightedRoundRobin one;
  WeightedRoundRobin two;
  std::string out;
  for (int i = 0; i < 9; ++i)
    out += static_cast<char>('a' + *(i % 2 == 0 ? one : two).Pick(pool.view(), "", full_b));
  // Turns a b c, three times: a and c where they fall; b's to a or c by each instance.
  for (int i = 0; i < 9; i += 3) {
    EXPECT_EQ(out[i], 'a') << out;
    EXPECT_NE(out[i + 1], 'b') << out;
    EXPECT_EQ(out[i + 2], 'c') << out;
  }
  // b no longer full: the rotation goes on where the pool stands, turn 9 being a.
  EXPECT_EQ(Sequence(one, pool, 3), "abc");
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
