// Tests of balancer/source_hash.h.
#include "balancer/source_hash.h"

#include <gtest/gtest.h>

#include "tests/balancer/pool_fixture.h"

namespace balancer {
namespace {

TEST(SourceHashTest, SameKeySameBackend) {
  TestPool pool({1, 1, 1});
  SourceHash s;
  for (int i = 0; i < 100; ++i) {
    std::string key = "device-" + std::to_string(i);
    auto first = s.Pick(pool.view(), key, {});
    for (int j = 0; j < 3; ++j)
      EXPECT_EQ(s.Pick(pool.view(), key, {}), first);
  }
}

TEST(SourceHashTest, TwoInstancesAgree) {
  TestPool pool({1, 2, 1});
  SourceHash a, b;
  for (int i = 0; i < 1000; ++i) {
    std::string key = "k" + std::to_string(i);
    EXPECT_EQ(a.Pick(pool.view(), key, {}), b.Pick(pool.view(), key, {}));
  }
}

TEST(SourceHashTest, SpreadFollowsWeights) {
  TestPool pool({1, 1, 2});
  SourceHash s;
  auto counts = pool.Spread(s, 40000);
  EXPECT_NEAR(counts[0], 10000, 500);
  EXPECT_NEAR(counts[1], 10000, 500);
  EXPECT_NEAR(counts[2], 20000, 700);
}

TEST(SourceHashTest, DownBackendKeysMoveOthersStay) {
  TestPool pool({1, 1, 1, 1});
  SourceHash s;
  std::vector<size_t> before;
  for (int i = 0; i < 10000; ++i)
    before.push_back(*s.Pick(pool.view(), std::to_string(i), {}));
  pool[2].eligible = false;
  int moved = 0;
  for (int i = 0; i < 10000; ++i) {
    size_t now = *s.Pick(pool.view(), std::to_string(i), {});
    EXPECT_NE(now, 2u);
    if (now != before[i]) ++moved;
  }
  // Backend 2's quarter of the keys must move; Maglev moves few others besides.
  EXPECT_GE(moved, 10000 / 4 * 0.9);
  EXPECT_LE(moved, 10000 / 4 * 1.2);
}

TEST(SourceHashTest, ExcludedBackendGetsTheKeysSecondChoiceEverywhere) {
  TestPool pool({1, 1, 1});
  SourceHash a, b;
  for (int i = 0; i < 200; ++i) {
    std::string key = "c" + std::to_string(i);
    size_t first = *a.Pick(pool.view(), key, {});
    bool exclude[3] = {false, false, false};
    exclude[first] = true;
    auto second = a.Pick(pool.view(), key, exclude);
    ASSERT_TRUE(second.has_value());
    EXPECT_NE(*second, first);
    EXPECT_EQ(second, b.Pick(pool.view(), key, exclude));
  }
}

TEST(SourceHashTest, EmptyAllDownAndSingle) {
  SourceHash s;
  TestPool empty({});
  EXPECT_FALSE(s.Pick(empty.view(), "x", {}).has_value());
  TestPool pool({1, 1});
  pool[0].eligible = false;
  pool[1].eligible = false;
  EXPECT_FALSE(s.Pick(pool.view(), "x", {}).has_value());
  TestPool single({1});
  EXPECT_EQ(s.Pick(single.view(), "x", {}), 0u);
}

}  // namespace
}  // namespace balancer
