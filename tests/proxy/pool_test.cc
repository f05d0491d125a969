// Tests of proxy/pool.h: what the picker hands the strategy (usable backends, effective weights
// with slow start, exclusions, the pool's shared turns) and that it follows generation changes.
#include "proxy/pool.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace proxy {
namespace {

// Backends b0, b1, ... with these weights; the last `backups` of them are backups.
std::shared_ptr<Pool> MakePool(balancer::StrategyKind kind, std::vector<uint32_t> weights,
                               uint32_t slow_start_s = 0, size_t backups = 0) {
  PoolConfig c;
  c.name = "p";
  c.strategy = kind;
  c.slow_start_s = slow_start_s;
  std::vector<std::shared_ptr<BackendState>> backends;
  for (size_t i = 0; i < weights.size(); ++i) {
    BackendConfig bc{.name = "b" + std::to_string(i),
                     .weight = weights[i],
                     .backup = i + backups >= weights.size()};
    c.backends.push_back(bc);
    backends.push_back(std::make_shared<BackendState>(
        bc, boost::asio::ip::tcp::endpoint(), boost::asio::ip::tcp::endpoint(), health::Policy{}));
  }
  return std::make_shared<Pool>(c, std::move(backends), std::make_shared<std::atomic<uint64_t>>(1),
                                nullptr);
}

std::map<std::string, int> Spread(PoolPicker& picker, int n) {
  std::map<std::string, int> counts;
  for (int i = 0; i < n; ++i) {
    auto b = picker.Pick("k" + std::to_string(i), {});
    counts[b ? b->name() : "none"]++;
  }
  return counts;
}

TEST(PoolPickerTest, FollowsWeights) {
  auto pool = MakePool(balancer::StrategyKind::kWeightedRoundRobin, {3, 1});
  PoolPicker picker(pool);
  auto counts = Spread(picker, 400);
  EXPECT_EQ(counts["b0"], 300);
  EXPECT_EQ(counts["b1"], 100);
}

TEST(PoolPickerTest, AFullBackendIsNotPickedByAnyStrategy) {
  for (auto kind :
       {balancer::StrategyKind::kWeightedRoundRobin, balancer::StrategyKind::kLeastConnections,
        balancer::StrategyKind::kSourceHash}) {
    auto pool = MakePool(kind, {1, 1});
    BackendState& b0 = *pool->backends()[0];
    b0.max_connections.store(3);
    b0.active.store(2);
    b0.remote_active.store(1);  // the tier's count: this proxy's and the others'
    PoolPicker picker(pool);
    EXPECT_EQ(Spread(picker, 50), (std::map<std::string, int>{{"b1", 50}}));
    b0.active.store(0);  // room again, and as loaded as b1 (least-connections)
    b0.remote_active.store(0);
    EXPECT_GT(Spread(picker, 50)["b0"], 0);
    pool->backends()[1]->max_connections.store(1);
    pool->backends()[1]->active.store(1);
    b0.active.store(3);
    EXPECT_EQ(picker.Pick("k", {}), nullptr);  // every backend full
  }
}

TEST(PoolPickerTest, ThreadsRotateOnceBetweenThem) {
  // Each I/O thread has a picker of its own; the pool's turns make them one rotation: however
  // the picks alternate, every three go to three different backends.
  auto pool = MakePool(balancer::StrategyKind::kWeightedRoundRobin, {1, 1, 1});
  PoolPicker first(pool);
  PoolPicker second(pool);
  for (int round = 0; round < 4; ++round) {
    std::set<std::string> names;
    names.insert(first.Pick("", {})->name());
    names.insert((round % 2 ? first : second).Pick("", {})->name());
    names.insert(second.Pick("", {})->name());
    EXPECT_EQ(names.size(), 3u) << "round " << round;
  }
}

TEST(PoolPickerTest, SkipsUnavailableDrainingAndZeroWeight) {
  auto pool = MakePool(balancer::StrategyKind::kWeightedRoundRobin, {1, 1, 1, 0});
  pool->backends()[0]->available = false;
  pool->backends()[1]->draining = true;
  pool->Touch();
  PoolPicker picker(pool);
  auto counts = Spread(picker, 10);
  EXPECT_EQ(counts["b2"], 10);
}

TEST(PoolPickerTest, NothingUsableGivesNull) {
  auto pool = MakePool(balancer::StrategyKind::kLeastConnections, {1, 1});
  for (auto& b : pool->backends())
    b->available = false;
  pool->Touch();
  PoolPicker picker(pool);
  EXPECT_EQ(picker.Pick("x", {}), nullptr);
}

TEST(PoolPickerTest, ExcludesTriedBackends) {
  auto pool = MakePool(balancer::StrategyKind::kSourceHash, {1, 1, 1});
  PoolPicker picker(pool);
  auto first = picker.Pick("client", {});
  ASSERT_NE(first, nullptr);
  std::vector<std::shared_ptr<BackendState>> tried = {first};
  auto second = picker.Pick("client", tried);
  ASSERT_NE(second, nullptr);
  EXPECT_NE(second, first);
  tried.push_back(second);
  auto third = picker.Pick("client", tried);
  ASSERT_NE(third, nullptr);
  tried.push_back(third);
  EXPECT_EQ(picker.Pick("client", tried), nullptr);
}

TEST(PoolPickerTest, LeastConnectionsCountsRemoteConnectionsToo) {
  auto pool = MakePool(balancer::StrategyKind::kLeastConnections, {1, 1});
  pool->backends()[0]->active = 5;
  pool->backends()[1]->active = 1;
  pool->backends()[1]->remote_active = 10;
  PoolPicker picker(pool);
  EXPECT_EQ(picker.Pick("", {})->name(), "b0");
}

TEST(PoolPickerTest, SlowStartRampsInTenths) {
  PoolConfig c;
  c.slow_start_s = 10;
  BackendState b(BackendConfig{.name = "b", .weight = 4}, {}, {}, health::Policy{});
  int64_t second = 1'000'000'000;
  EXPECT_EQ(PoolPicker::EffectiveWeight(b, c, 0), 40u);  // up_since 0: long up, full weight
  b.up_since_ns = 100 * second;
  EXPECT_EQ(PoolPicker::EffectiveWeight(b, c, 100 * second), 4u);       // first tenth
  EXPECT_EQ(PoolPicker::EffectiveWeight(b, c, 105 * second), 24u);      // six tenths
  EXPECT_EQ(PoolPicker::EffectiveWeight(b, c, 109 * second + 1), 40u);  // last tenth
  EXPECT_EQ(PoolPicker::EffectiveWeight(b, c, 500 * second), 40u);      // done
  c.strategy = balancer::StrategyKind::kSourceHash;
  EXPECT_EQ(PoolPicker::EffectiveWeight(b, c, 100 * second), 40u);  // hashing does not ramp
}

TEST(PoolPickerTest, FollowsAnOperatorWeightChangeAfterTouch) {
  auto pool = MakePool(balancer::StrategyKind::kWeightedRoundRobin, {1, 1});
  PoolPicker picker(pool);
  EXPECT_EQ(Spread(picker, 10)["b0"], 5);
  pool->backends()[0]->weight = 4;
  pool->Touch();
  EXPECT_EQ(Spread(picker, 10)["b0"], 8);
}

constexpr balancer::StrategyKind kAllStrategies[] = {balancer::StrategyKind::kWeightedRoundRobin,
                                                     balancer::StrategyKind::kLeastConnections,
                                                     balancer::StrategyKind::kSourceHash};

TEST(PoolPickerTest, BackupsOnlyWhenNoOtherBackendCanTakeTheConnection) {
  for (auto kind : kAllStrategies) {
    SCOPED_TRACE(static_cast<int>(kind));
    auto pool = MakePool(kind, {1, 1, 1, 1}, 0, 2);  // b2 and b3 are backups
    auto b = pool->backends();
    PoolPicker picker(pool);
    auto spread = Spread(picker, 200);
    EXPECT_GT(spread["b0"], 0);
    EXPECT_GT(spread["b1"], 0);
    EXPECT_EQ(spread["b0"] + spread["b1"], 200);
    // Each way out of the first tier: draining, down, full, weight 0.
    b[0]->draining.store(true);
    b[1]->available.store(false);
    pool->Touch();
    spread = Spread(picker, 200);
    EXPECT_GT(spread["b2"], 0);  // every backup takes its share
    EXPECT_GT(spread["b3"], 0);
    EXPECT_EQ(spread["b2"] + spread["b3"], 200);
    b[1]->available.store(true);
    b[1]->max_connections.store(1);
    b[1]->active.store(1);
    b[0]->draining.store(false);
    b[0]->weight.store(0);
    pool->Touch();
    spread = Spread(picker, 50);
    EXPECT_EQ(spread["b2"] + spread["b3"], 50);
    // One back in the first tier takes every new connection again.
    b[0]->weight.store(1);
    pool->Touch();
    EXPECT_EQ(Spread(picker, 50), (std::map<std::string, int>{{"b0", 50}}));
  }
}

TEST(PoolPickerTest, ARetryGoesToTheBackupsOnceTheFirstTierIsTried) {
  for (auto kind : kAllStrategies) {
    SCOPED_TRACE(static_cast<int>(kind));
    auto pool = MakePool(kind, {1, 1, 1}, 0, 1);
    auto b = pool->backends();
    PoolPicker picker(pool);
    std::vector<std::shared_ptr<BackendState>> tried;
    tried.push_back(b[0]);
    EXPECT_EQ(picker.Pick("k", tried), b[1]);
    tried.push_back(b[1]);
    EXPECT_EQ(picker.Pick("k", tried), b[2]);
    tried.push_back(b[2]);
    EXPECT_EQ(picker.Pick("k", tried), nullptr);
  }
}

TEST(PoolPickerTest, BackupsLeaveTheFirstTiersHashAlone) {
  // The first tier's Maglev table is built from its own names: adding backups moves no key.
  auto plain = MakePool(balancer::StrategyKind::kSourceHash, {1, 1, 1});
  auto with_backups = MakePool(balancer::StrategyKind::kSourceHash, {1, 1, 1, 1, 1}, 0, 2);
  PoolPicker a(plain);
  PoolPicker b(with_backups);
  for (int i = 0; i < 1000; ++i) {
    std::string key = "client-" + std::to_string(i);
    EXPECT_EQ(a.Pick(key, {})->name(), b.Pick(key, {})->name()) << key;
  }
}

TEST(PoolTest, TakesABackupOnlyWhileTheFirstTierTakesNone) {
  auto pool = MakePool(balancer::StrategyKind::kLeastConnections, {1, 1}, 0, 1);
  BackendState& first = *pool->backends()[0];
  BackendState& backup = *pool->backends()[1];
  EXPECT_TRUE(pool->Takes(first));
  EXPECT_FALSE(pool->Takes(backup));
  first.draining.store(true);
  EXPECT_FALSE(pool->Takes(first));
  EXPECT_TRUE(pool->Takes(backup));
  EXPECT_FALSE(pool->FirstTierUsable());
  first.draining.store(false);
  first.weight.store(0);
  EXPECT_TRUE(pool->Takes(backup));
  first.weight.store(1);
  first.max_connections.store(1);
  first.active.store(1);  // full: usable, but takes no more
  EXPECT_TRUE(pool->FirstTierUsable());
  EXPECT_TRUE(pool->Takes(backup));
  first.active.store(0);
  EXPECT_FALSE(pool->Takes(backup));
  backup.available.store(false);
  first.available.store(false);
  EXPECT_FALSE(pool->Takes(backup));
}

}  // namespace
}  // namespace proxy
