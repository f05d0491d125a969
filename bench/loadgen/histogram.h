// A log-linear latency histogram: values in nanoseconds, counted in buckets whose width grows with
// the value, so that every recorded value is known to within 1/64 (about 1.6 %) from 1 ns to hours,
// in a fixed 30 KiB, with O(1) recording and exact merging. The idea of HdrHistogram, reduced to
// what the load generator needs.
//
// A value v < 64 has its own bucket. Above, v lies in [2^e, 2^(e+1)) for some e >= 6, and that
// range is cut into 64 equal sub-buckets: bucket = (e - 5) * 64 + (v >> (e - 6)) - 64.
//
//   Histogram h;
//   h.Record(1'250'000);                 // 1.25 ms
//   uint64_t p99 = h.Percentile(99.0);  // within 1.6 % of the true value
#pragma once

#include <array>
#include <cstdint>

namespace loadgen {

class Histogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr int kSubBuckets = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSubBuckets;

  void Record(uint64_t value_ns);
  void Merge(const Histogram& other);
  void Reset() { *this = Histogram(); }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  // The smallest recorded value v such that at least `percent` % of values are <= v, reported as
  // the upper edge of v's bucket (never below the true value, at most 1.6 % above). 0 when empty.
  uint64_t Percentile(double percent) const;

  // Bucket arithmetic, public for tests.
  static int BucketOf(uint64_t value);
  static uint64_t BucketUpperEdge(int bucket);

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace loadgen
