// Property tests of balancer/maglev.h, in the manner of Katran's CHHelpersTest.
#include "balancer/maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>

#include "balancer/hash.h"

namespace balancer {
namespace {

std::vector<std::string> Names(int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i)
    names.push_back("broker-" + std::to_string(i));
  return names;
}

std::vector<MaglevTable::Entry> Entries(const std::vector<std::string>& names,
                                        std::vector<uint32_t> weights = {}) {
  std::vector<MaglevTable::Entry> out;
  for (size_t i = 0; i < names.size(); ++i) {
    out.push_back({names[i], weights.empty() ? 1u : weights[i]});
  }
  return out;
}

std::vector<int> SlotCounts(const MaglevTable& t, size_t backends) {
  std::vector<int> counts(backends, 0);
  for (size_t i = 0; i < t.size(); ++i)
    ++counts[t.Slot(i)];
  return counts;
}

TEST(MaglevTest, EqualWeightsSpreadSlotsEvenly) {
  auto names = Names(10);
  MaglevTable t = MaglevTable::Build(Entries(names));
  ASSERT_EQ(t.size(), 65537u);
  for (int c : SlotCounts(t, 10)) {
    EXPECT_GE(c, 6553);
    EXPECT_LE(c, 6554);
  }
}

TEST(MaglevTest, SlotsFollowWeights) {
  auto names = Names(3);
  MaglevTable t = MaglevTable::Build(Entries(names, {1, 2, 5}));
  auto counts = SlotCounts(t, 3);
  double unit = 65537.0 / 8;
  EXPECT_NEAR(counts[0], unit * 1, unit * 0.01);
  EXPECT_NEAR(counts[1], unit * 2, unit * 0.01);
  EXPECT_NEAR(counts[2], unit * 5, unit * 0.01);
}

TEST(MaglevTest, DeterministicAndIndependentOfOrder) {
  auto names = Names(5);
  auto entries = Entries(names);
  MaglevTable a = MaglevTable::Build(entries);
  std::vector<MaglevTable::Entry> reversed(entries.rbegin(), entries.rend());
  MaglevTable b = MaglevTable::Build(reversed);
  for (size_t i = 0; i < a.size(); ++i) {
    // The same backend by name in every slot.
    ASSERT_EQ(entries[a.Slot(i)].name, reversed[b.Slot(i)].name) << "slot " << i;
  }
}

TEST(MaglevTest, EmptyAndSingle) {
  EXPECT_TRUE(MaglevTable::Build({}).empty());
  std::string only = "only";
  MaglevTable t = MaglevTable::Build({{only, 3}}, 7);
  for (size_t i = 0; i < 7; ++i)
    EXPECT_EQ(t.Slot(i), 0u);
}

TEST(MaglevTest, TinyPrimeTablesAreFull) {
  auto names = Names(3);
  for (uint32_t size : {3u, 5u, 7u, 11u, 13u}) {
    MaglevTable t = MaglevTable::Build(Entries(names), size);
    auto counts = SlotCounts(t, 3);
    int total = 0;
    for (int c : counts)
      total += c;
    EXPECT_EQ(total, static_cast<int>(size));
    for (int c : counts)
      EXPECT_GE(c, static_cast<int>(size) / 3);
  }
}

// 66 backends of weight 1000 fill 65537 slots in 993 rounds; one of weight 1 would earn its
// first slot only in round 1000. It still gets one, or a pool whose heavy backends are all
// excluded (full, tried) would find no backend though one is usable.
TEST(MaglevTest, AFarLighterBackendStillOwnsASlot) {
  auto names = Names(67);
  std::vector<uint32_t> weights(66, 1000);
  weights.push_back(1);
  MaglevTable t = MaglevTable::Build(Entries(names, weights));
  auto counts = SlotCounts(t, names.size());
  EXPECT_EQ(counts.back(), 1);  // taken from a heavy one: the others keep their share
  for (size_t i = 0; i + 1 < counts.size(); ++i)
    EXPECT_GE(counts[i], 65537 / 67) << names[i];
}

// The share of 100,000 keys whose backend (by name) differs between tables `a` over `a_names`
// and `b` over `b_names`.
double MovedShare(const MaglevTable& a, const std::vector<std::string>& a_names,
                  const MaglevTable& b, const std::vector<std::string>& b_names) {
  const int keys = 100000;
  int moved = 0;
  for (int k = 0; k < keys; ++k) {
    uint64_t h = StableHash("client-" + std::to_string(k));
    if (a_names[a.Lookup(h)] != b_names[b.Lookup(h)]) ++moved;
  }
  return static_cast<double>(moved) / keys;
}

// The bound: when one of N backends leaves (or joins), the keys that move are close to
// its share of them, at most 1.2 times that. Every position, since the table is built from the
// names, not the order.
TEST(MaglevTest, RemovingOrAddingOneMovesAboutItsShare) {
  for (int n : {2, 3, 5, 10, 20}) {
    auto names = Names(n + 1);
    MaglevTable all = MaglevTable::Build(Entries(names));
    for (int gone = 0; gone <= n; ++gone) {
      auto fewer = names;
      fewer.erase(fewer.begin() + gone);
      MaglevTable without = MaglevTable::Build(Entries(fewer));
      // Leaving: the backend held 1/(n+1) of the keys. Joining, the other way: it takes as much.
      double share = MovedShare(all, names, without, fewer);
      double expected = 1.0 / (n + 1);
      EXPECT_GE(share, expected * 0.9) << n + 1 << " backends, without " << gone;
      EXPECT_LE(share, expected * 1.2) << n + 1 << " backends, without " << gone;
    }
  }
}

TEST(MaglevTest, RemovingAWeightedOneMovesAboutItsWeightsShare) {
  auto names = Names(5);
  std::vector<uint32_t> weights = {1, 2, 3, 4, 10};  // 20 in all
  MaglevTable all = MaglevTable::Build(Entries(names, weights));
  for (size_t gone = 0; gone < names.size(); ++gone) {
    auto fewer = names;
    auto fewer_weights = weights;
    fewer.erase(fewer.begin() + gone);
    fewer_weights.erase(fewer_weights.begin() + gone);
    MaglevTable without = MaglevTable::Build(Entries(fewer, fewer_weights));
    double share = MovedShare(all, names, without, fewer);
    double expected = weights[gone] / 20.0;
    EXPECT_GE(share, expected * 0.9) << "without " << names[gone];
    EXPECT_LE(share, expected * 1.2) << "without " << names[gone];
  }
}

TEST(MaglevTest, IsPrime) {
  EXPECT_TRUE(IsPrime(65537));
  EXPECT_TRUE(IsPrime(2));
  EXPECT_FALSE(IsPrime(65536));
  EXPECT_FALSE(IsPrime(1));
  EXPECT_FALSE(IsPrime(0));
}

}  // namespace
}  // namespace balancer
