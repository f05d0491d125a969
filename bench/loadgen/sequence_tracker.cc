// SequenceTracker.
#include "bench/loadgen/sequence_tracker.h"

namespace loadgen {

SequenceTracker::Result SequenceTracker::Receive(uint64_t sequence) {
  if (sequence == next_) {
    ++next_;
    return Result::kNew;
  }
  if (sequence > next_) {
    for (uint64_t missing = next_; missing < sequence; ++missing)
      gaps_.insert(missing);
    next_ = sequence + 1;
    return Result::kNew;
  }
  return gaps_.erase(sequence) > 0 ? Result::kReordered : Result::kDuplicate;
}

}  // namespace loadgen
