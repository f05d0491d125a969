// Tests of state/local_sticky_store.h, with time passed in.
#include "state/local_sticky_store.h"

#include <gtest/gtest.h>

namespace state {
namespace {

using std::chrono::seconds;
const auto t0 = LocalStickyStore::Clock::time_point() + std::chrono::hours(1);

TEST(LocalStickyStoreTest, BindThenFind) {
  LocalStickyStore s;
  EXPECT_EQ(s.FindAt("p", "c1", t0), std::nullopt);
  EXPECT_EQ(s.BindAt("p", "c1", "b1", true, seconds(10), t0), "b1");
  EXPECT_EQ(s.FindAt("p", "c1", t0), "b1");
  EXPECT_EQ(s.FindAt("other-pool", "c1", t0), std::nullopt);
}

TEST(LocalStickyStoreTest, FirstWriterWinsIfAbsentOnly) {
  LocalStickyStore s;
  EXPECT_EQ(s.BindAt("p", "c", "b1", true, seconds(10), t0), "b1");
  EXPECT_EQ(s.BindAt("p", "c", "b2", true, seconds(10), t0), "b1");   // the second follows
  EXPECT_EQ(s.BindAt("p", "c", "b2", false, seconds(10), t0), "b2");  // a failover overwrites
  EXPECT_EQ(s.FindAt("p", "c", t0), "b2");
}

TEST(LocalStickyStoreTest, ExpiresTtlAfterLastTouch) {
  LocalStickyStore s;
  s.BindAt("p", "c", "b1", true, seconds(10), t0);
  s.TouchAt("p", "c", seconds(10), t0 + seconds(8));
  EXPECT_EQ(s.FindAt("p", "c", t0 + seconds(17)), "b1");
  EXPECT_EQ(s.FindAt("p", "c", t0 + seconds(18)), std::nullopt);
  // An expired record is free again: a new bind-if-absent takes it.
  EXPECT_EQ(s.BindAt("p", "c", "b3", true, seconds(10), t0 + seconds(20)), "b3");
}

TEST(LocalStickyStoreTest, TouchDoesNotResurrect) {
  LocalStickyStore s;
  s.BindAt("p", "c", "b1", true, seconds(1), t0);
  s.TouchAt("p", "c", seconds(10), t0 + seconds(5));
  EXPECT_EQ(s.FindAt("p", "c", t0 + seconds(6)), std::nullopt);
}

TEST(LocalStickyStoreTest, ExpiredRecordsAreSwept) {
  LocalStickyStore s;
  for (int i = 0; i < 1000; ++i)
    s.BindAt("p", std::to_string(i), "b", true, seconds(1), t0);
  EXPECT_EQ(s.size(), 1000u);
  // Binds long after the expiry sweep the other shards as they go.
  for (int i = 0; i < 200; ++i) {
    s.BindAt("p", "late" + std::to_string(i), "b", true, seconds(1), t0 + seconds(100));
  }
  EXPECT_EQ(s.size(), 200u);
}

TEST(LocalStickyStoreTest, EachShardIsSweptAtMostOncePerInterval) {
  // A sweep walks a whole shard: were every write to sweep one, a write would cost in proportion
  // to the table. The first writes sweep every shard (nothing expired yet), so the writes that
  // follow within 10 s leave the expired records where they are.
  LocalStickyStore s;
  for (int i = 0; i < 1000; ++i)
    s.BindAt("p", std::to_string(i), "b", true, seconds(1), t0);
  for (int i = 0; i < 200; ++i)
    s.BindAt("p", "soon" + std::to_string(i), "b", true, seconds(1), t0 + seconds(5));
  EXPECT_EQ(s.size(), 1200u);
  for (int i = 0; i < 200; ++i)
    s.BindAt("p", "late" + std::to_string(i), "b", true, seconds(60), t0 + seconds(11));
  EXPECT_EQ(s.size(), 200u);
}

TEST(LocalStickyStoreTest, ExpiredRecordsAreSweptByStoresToo) {
  // A Redis-backed store's cache: every write is a Store while Redis is up.
  LocalStickyStore s;
  for (int i = 0; i < 1000; ++i)
    s.StoreAt("p", std::to_string(i), "b", seconds(1), t0);
  for (int i = 0; i < 200; ++i)
    s.StoreAt("p", "late" + std::to_string(i), "b", seconds(1), t0 + seconds(100));
  EXPECT_EQ(s.size(), 200u);
}

}  // namespace
}  // namespace state
