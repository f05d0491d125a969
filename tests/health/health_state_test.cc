// Tests of health/health_state.h, with time passed in.
#include "health/health_state.h"

#include <gtest/gtest.h>

namespace health {
namespace {

using std::chrono::milliseconds;

Policy TestPolicy() {
  Policy p;
  p.rise = 2;
  p.fall = 3;
  p.passive_failures = 2;
  p.eject_base = milliseconds(1000);
  p.eject_max = milliseconds(4000);
  return p;
}

const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);

// TestPolicy's passive_failures connect failures in a row at `at`: an ejection.
void Eject(HealthState& h, Clock::time_point at) {
  h.OnConnectFailure(at);
  h.OnConnectFailure(at);
}

// An ejection at `at`, waited out; returns when it ended.
Clock::time_point EjectAndWaitOut(HealthState& h, Clock::time_point at) {
  Eject(h, at);
  Clock::time_point end = h.ejected_until();
  h.Tick(end);
  return end;
}

TEST(HealthStateTest, StartsUpAndGoesDownAfterFallFailuresInARow) {
  HealthState h(TestPolicy());
  EXPECT_TRUE(h.available(t0));
  EXPECT_EQ(h.OnCheck(false, t0), std::nullopt);
  EXPECT_EQ(h.OnCheck(false, t0), std::nullopt);
  EXPECT_EQ(h.OnCheck(false, t0), Event::kWentDown);
  EXPECT_FALSE(h.up());
  EXPECT_FALSE(h.available(t0));
}

TEST(HealthStateTest, ASuccessInBetweenResetsTheCount) {
  HealthState h(TestPolicy());
  h.OnCheck(false, t0);
  h.OnCheck(false, t0);
  h.OnCheck(true, t0);
  h.OnCheck(false, t0);
  EXPECT_EQ(h.OnCheck(false, t0), std::nullopt);
  EXPECT_TRUE(h.up());
}

TEST(HealthStateTest, ComesBackAfterRiseSuccesses) {
  HealthState h(TestPolicy());
  for (int i = 0; i < 3; ++i)
    h.OnCheck(false, t0);
  EXPECT_EQ(h.OnCheck(true, t0), std::nullopt);
  EXPECT_EQ(h.OnCheck(true, t0), Event::kCameUp);
  EXPECT_TRUE(h.available(t0));
}

TEST(HealthStateTest, FastIntervalWhileChanging) {
  Policy p = TestPolicy();
  HealthState h(p);
  EXPECT_EQ(h.NextInterval(), p.interval);
  h.OnCheck(false, t0);
  EXPECT_EQ(h.NextInterval(), p.fast_interval);
  h.OnCheck(true, t0);
  EXPECT_EQ(h.NextInterval(), p.interval);
}

TEST(HealthStateTest, ConsecutiveConnectFailuresEjectWithGrowingBackoff) {
  HealthState h(TestPolicy());
  EXPECT_EQ(h.OnConnectFailure(t0), std::nullopt);
  EXPECT_EQ(h.OnConnectFailure(t0), Event::kEjected);
  EXPECT_FALSE(h.available(t0));
  EXPECT_TRUE(h.up());  // ejected is not down: active checks still say up
  EXPECT_EQ(h.ejected_until(), t0 + milliseconds(1000));
  auto t1 = t0 + milliseconds(1000);
  EXPECT_TRUE(h.available(t1));
  EXPECT_EQ(h.Tick(t1), Event::kRestored);
  h.OnConnectFailure(t1);
  EXPECT_EQ(h.OnConnectFailure(t1), Event::kEjected);
  EXPECT_EQ(h.ejected_until(), t1 + milliseconds(2000));  // doubled
  auto t2 = t1 + milliseconds(2000);
  h.Tick(t2);
  h.OnConnectFailure(t2);
  h.OnConnectFailure(t2);
  EXPECT_EQ(h.ejected_until(), t2 + milliseconds(4000));  // capped at eject_max
  auto t3 = t2 + milliseconds(4000);
  h.Tick(t3);
  h.OnConnectFailure(t3);
  h.OnConnectFailure(t3);
  EXPECT_EQ(h.ejected_until(), t3 + milliseconds(4000));
}

TEST(HealthStateTest, ASuccessfulConnectResetsTheFailureCount) {
  HealthState h(TestPolicy());
  h.OnConnectFailure(t0);
  h.OnConnectSuccess();
  EXPECT_EQ(h.OnConnectFailure(t0), std::nullopt);
  EXPECT_TRUE(h.available(t0));
}

TEST(HealthStateTest, AnActiveSuccessEndsAnEjection) {
  HealthState h(TestPolicy());
  h.OnConnectFailure(t0);
  h.OnConnectFailure(t0);
  ASSERT_FALSE(h.available(t0));
  EXPECT_EQ(h.OnCheck(true, t0 + milliseconds(10)), Event::kRestored);
  EXPECT_TRUE(h.available(t0 + milliseconds(10)));
}

TEST(HealthStateTest, EjectionsAreForgottenAfterAQuietPeriod) {
  HealthState h(TestPolicy());
  Clock::time_point end = EjectAndWaitOut(h, t0);
  Clock::time_point later = end + milliseconds(8001);  // more than 2 x eject_max after its end
  Eject(h, later);
  EXPECT_EQ(h.ejected_until(), later + milliseconds(1000));
}

TEST(HealthStateTest, TheQuietPeriodCountsFromTheEndOfTheEjection) {
  HealthState h(TestPolicy());
  Clock::time_point t = t0;
  for (int i = 0; i < 3; ++i)  // 1, 2, then 4 s
    t = EjectAndWaitOut(h, t);
  // 7 s after the end of a 4 s ejection, 11 s after its start: not yet forgotten.
  t += milliseconds(7000);
  t = EjectAndWaitOut(h, t);
  EXPECT_EQ(t, t0 + milliseconds(1000 + 2000 + 4000 + 7000 + 4000));
  Eject(h, t + milliseconds(8001));
  EXPECT_EQ(h.ejected_until(), t + milliseconds(8001 + 1000));
}

TEST(HealthStateTest, TheBackoffReachesAnEjectMaxFarAboveTheBase) {
  Policy p = TestPolicy();
  p.eject_base = milliseconds(10);
  p.eject_max = std::chrono::hours(24);
  HealthState h(p);
  Clock::time_point t = t0;
  for (int i = 0; i < 29; ++i)
    t = EjectAndWaitOut(h, t);
  Eject(h, t);
  EXPECT_EQ(h.ejected_until() - t, std::chrono::hours(24));
}

TEST(HealthStateTest, ASuccessEndingAnEjectionBreaksARunOfFailedChecks) {
  HealthState h(TestPolicy());  // fall 3
  h.OnCheck(false, t0);
  h.OnCheck(false, t0);
  Eject(h, t0);
  ASSERT_FALSE(h.available(t0));
  EXPECT_EQ(h.OnCheck(true, t0), Event::kRestored);
  EXPECT_EQ(h.OnCheck(false, t0), std::nullopt);  // one failure in a row, not three
  EXPECT_TRUE(h.up());
}

TEST(HealthStateTest, TickBeforeTheEndDoesNothing) {
  HealthState h(TestPolicy());
  EXPECT_EQ(h.Tick(t0), std::nullopt);
  h.OnConnectFailure(t0);
  h.OnConnectFailure(t0);
  EXPECT_EQ(h.Tick(t0 + milliseconds(999)), std::nullopt);
}

TEST(HealthStateTest, AHeldBackEjectionHappensAtTheNextFailureOnceAllowed) {
  HealthState h(TestPolicy());
  EXPECT_EQ(h.OnConnectFailure(t0, false), std::nullopt);
  EXPECT_FALSE(h.ejection_held());
  EXPECT_EQ(h.OnConnectFailure(t0, false), std::nullopt);  // the second failure would eject
  EXPECT_TRUE(h.ejection_held());
  EXPECT_TRUE(h.available(t0));
  EXPECT_EQ(h.OnConnectFailure(t0, false), std::nullopt);
  EXPECT_EQ(h.OnConnectFailure(t0, true), Event::kEjected);  // one failure is enough now
  EXPECT_FALSE(h.ejection_held());
  EXPECT_FALSE(h.available(t0));
}

TEST(HealthStateTest, ASuccessEndsAHeldBackEjection) {
  HealthState h(TestPolicy());
  h.OnConnectFailure(t0, false);
  h.OnConnectFailure(t0, false);
  h.OnConnectSuccess();
  EXPECT_FALSE(h.ejection_held());
  EXPECT_EQ(h.OnConnectFailure(t0, true), std::nullopt);
  EXPECT_EQ(h.OnConnectFailure(t0, true), Event::kEjected);
}

TEST(HealthStateTest, PassiveDetectionCanBeOff) {
  Policy p = TestPolicy();
  p.passive_failures = 0;
  HealthState h(p);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(h.OnConnectFailure(t0), std::nullopt);
  EXPECT_TRUE(h.available(t0));
}

}  // namespace
}  // namespace health
