// Classifies the sequence numbers one subscriber receives from one publisher: new, duplicate, or
// late (reordered), and what is still missing.
//
// Sequence numbers start at 0 and rise by one per message. The tracker keeps the next number it
// expects and the set of numbers it skipped (gaps). A number above the next one opens a gap; a
// number inside a gap fills it and counts as reordered; anything else already seen is a duplicate.
// Memory grows with the number of open gaps only, i.e. with losses.
//
//   SequenceTracker t;
//   t.Receive(0);  // kNew
//   t.Receive(2);  // kNew; 1 is missing
//   t.Receive(1);  // kReordered
//   t.Receive(1);  // kDuplicate
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>

namespace loadgen {

class SequenceTracker {
 public:
  enum class Result { kNew, kReordered, kDuplicate };

  Result Receive(uint64_t sequence);
  // Numbers below the highest received that never arrived.
  size_t missing() const { return gaps_.size(); }

 private:
  uint64_t next_ = 0;
  std::set<uint64_t> gaps_;
};

}  // namespace loadgen
