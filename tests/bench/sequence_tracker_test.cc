// Tests of bench/loadgen/sequence_tracker.h.
#include "bench/loadgen/sequence_tracker.h"

#include <gtest/gtest.h>

namespace loadgen {
namespace {

using R = SequenceTracker::Result;

TEST(SequenceTrackerTest, InOrderIsAllNew) {
  SequenceTracker t;
  for (uint64_t s = 0; s < 100; ++s)
    EXPECT_EQ(t.Receive(s), R::kNew);
  EXPECT_EQ(t.missing(), 0u);
}

TEST(SequenceTrackerTest, RepeatIsDuplicate) {
  SequenceTracker t;
  EXPECT_EQ(t.Receive(0), R::kNew);
  EXPECT_EQ(t.Receive(1), R::kNew);
  EXPECT_EQ(t.Receive(1), R::kDuplicate);
  EXPECT_EQ(t.Receive(0), R::kDuplicate);
}

TEST(SequenceTrackerTest, GapThenFillIsReorderedOnceThenDuplicate) {
  SequenceTracker t;
  EXPECT_EQ(t.Receive(0), R::kNew);
  EXPECT_EQ(t.Receive(3), R::kNew);
  EXPECT_EQ(t.missing(), 2u);
  EXPECT_EQ(t.Receive(2), R::kReordered);
  EXPECT_EQ(t.Receive(2), R::kDuplicate);
  EXPECT_EQ(t.missing(), 1u);
  EXPECT_EQ(t.Receive(4), R::kNew);
}

TEST(SequenceTrackerTest, NeverFilledGapsAreMissing) {
  SequenceTracker t;
  for (uint64_t s = 0; s < 100; s += 2)
    t.Receive(s);
  EXPECT_EQ(t.missing(), 49u);
}

}  // namespace
}  // namespace loadgen
