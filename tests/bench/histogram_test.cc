// Tests of bench/loadgen/histogram.h on known data.
#include "bench/loadgen/histogram.h"

#include <gtest/gtest.h>

#include <random>

namespace loadgen {
namespace {

TEST(HistogramTest, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 1; v <= 50; ++v)
    h.Record(v);
  EXPECT_EQ(h.Percentile(50), 25u);
  EXPECT_EQ(h.Percentile(100), 50u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 25.5);
}

TEST(HistogramTest, BucketsCoverEveryValueWithinOnePointSixPercent) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    uint64_t v = rng() >> (rng() % 64);
    int b = Histogram::BucketOf(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, Histogram::kBuckets);
    uint64_t upper = Histogram::BucketUpperEdge(b);
    ASSERT_GE(upper, v);
    ASSERT_LE(static_cast<double>(upper - v), static_cast<double>(v) / 64.0 + 1) << v;
    if (b > 0) ASSERT_LT(Histogram::BucketUpperEdge(b - 1), v) << v;  // buckets do not overlap
  }
}

TEST(HistogramTest, PercentilesOfAUniformMillionAreWithinResolution) {
  Histogram h;
  for (uint64_t v = 1; v <= 1'000'000; ++v)
    h.Record(v * 1000);  // 1 us .. 1 s
  auto near = [](uint64_t got, double want) {
    EXPECT_GE(static_cast<double>(got), want);
    EXPECT_LE(static_cast<double>(got), want * 1.016 + 1);
  };
  near(h.Percentile(50), 500'000'000);
  near(h.Percentile(90), 900'000'000);
  near(h.Percentile(99), 990'000'000);
  near(h.Percentile(99.9), 999'000'000);
  EXPECT_EQ(h.Percentile(100), 1'000'000'000u);
  EXPECT_EQ(h.max(), 1'000'000'000u);
}

TEST(HistogramTest, OutlierShowsOnlyAboveItsRank) {
  Histogram h;
  for (int i = 0; i < 999; ++i)
    h.Record(1000);
  h.Record(5'000'000);
  EXPECT_LE(h.Percentile(99.9), 1016u);
  EXPECT_EQ(h.Percentile(99.95), 5'000'000u);
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  for (uint64_t v = 0; v < 1000; ++v) {
    (v % 2 ? a : b).Record(v * 37);
    all.Record(v * 37);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  for (double p : {1.0, 50.0, 99.0, 100.0})
    EXPECT_EQ(a.Percentile(p), all.Percentile(p));
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
}

}  // namespace
}  // namespace loadgen
