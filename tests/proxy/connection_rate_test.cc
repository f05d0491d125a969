// Tests of proxy/connection_rate.h: a burst of a tenth of a second's worth, then even pacing.
#include "proxy/connection_rate.h"

#include <gtest/gtest.h>

namespace proxy {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kStart = 1000 * kSecond;

TEST(ConnectionRateTest, ABurstOfATenthOfASecondThenOneEveryInterval) {
  ConnectionRate rate;
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(rate.Take(kStart, 100), 0) << i;       // 100 per second: bursts of 10
  EXPECT_EQ(rate.Take(kStart, 100), kSecond / 100);  // the next in 10 ms
  EXPECT_EQ(rate.Take(kStart + kSecond / 200, 100), kSecond / 200);
  EXPECT_EQ(rate.Take(kStart + kSecond / 100, 100), 0);
  EXPECT_GT(rate.Take(kStart + kSecond / 100, 100), 0);
}

TEST(ConnectionRateTest, OverASecondAtMostTheRateAndTheBurst) {
  ConnectionRate rate;
  int taken = 0;
  for (int64_t t = kStart; t < kStart + kSecond; t += kSecond / 1000) {
    while (rate.Take(t, 50) == 0)
      ++taken;
  }
  EXPECT_EQ(taken, 50 + 5 - 1);  // the burst of 5 at once, then one every 20 ms
}

TEST(ConnectionRateTest, AQuietTimeSavesNoMoreThanTheBurst) {
  ConnectionRate rate;
  int taken = 0;
  while (rate.Take(kStart + 60 * kSecond, 20) == 0)
    ++taken;
  EXPECT_EQ(taken, 2);
}

TEST(ConnectionRateTest, ALowRateStillLetsOneThrough) {
  ConnectionRate rate;
  EXPECT_EQ(rate.Take(kStart, 1), 0);
  EXPECT_EQ(rate.Take(kStart, 1), kSecond);
}

TEST(ConnectionRateTest, AReturnedPlaceIsFreeAgain) {
  ConnectionRate rate;
  EXPECT_EQ(rate.Take(kStart, 1), 0);
  rate.Return(1);
  EXPECT_EQ(rate.Take(kStart, 1), 0);
}

}  // namespace
}  // namespace proxy
