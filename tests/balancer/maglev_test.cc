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

TEST(MaglevTest, RemovingOneOfNMovesAboutItsShare) {
  for (int n : {3, 5, 10, 20}) {
    auto names = Names(n);
    MaglevTable before = MaglevTable::Build(Entries(names));
    auto fewer_names = names;
    fewer_names.erase(fewer_names.begin() + n / 2);
    MaglevTable after = MaglevTable::Build(Entries(fewer_names));
    const int keys = 100000;
    int moved = 0;
    for (int k = 0; k < keys; ++k) {
      uint64_t h = StableHash("client-" + std::to_string(k));
      if (names[before.Lookup(h)] != fewer_names[after.Lookup(h)]) ++moved;
    }
    double share = static_cast<double>(moved) / keys;
    EXPECT_GE(share, 1.0 / n * 0.9) << n;  // at least the removed backend's keys move
    EXPECT_LE(share, 1.0 / n * 1.2) << n << " backends: " << share;
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
