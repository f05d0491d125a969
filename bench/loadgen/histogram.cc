// Histogram bucket arithmetic and percentiles.
#include "bench/loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace loadgen {

int Histogram::BucketOf(uint64_t v) {
  if (v < kSubBuckets) return static_cast<int>(v);
  int e = 63 - std::countl_zero(v);  // v in [2^e, 2^(e+1)), e >= kSubBits
  return (e - kSubBits + 1) * kSubBuckets + static_cast<int>(v >> (e - kSubBits)) - kSubBuckets;
}

uint64_t Histogram::BucketUpperEdge(int bucket) {
  if (bucket < kSubBuckets) return static_cast<uint64_t>(bucket);
  int e = bucket / kSubBuckets + kSubBits - 1;
  uint64_t sub = static_cast<uint64_t>(bucket % kSubBuckets) + kSubBuckets;  // in [64, 128)
  uint64_t width = uint64_t{1} << (e - kSubBits);
  return sub * width + (width - 1);
}

void Histogram::Record(uint64_t v) {
  ++counts_[BucketOf(v)];
  ++count_;
  sum_ += v;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void Histogram::Merge(const Histogram& other) {
  for (int i = 0; i < kBuckets; ++i)
    counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t Histogram::Percentile(double percent) const {
  if (count_ == 0) return 0;
  // The epsilon keeps 99.9 % of 1000 at rank 999: 99.9 / 100 * 1000 is 999.0000000000001.
  auto rank =
      static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_) - 1e-9));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(BucketUpperEdge(i), max_);
  }
  return max_;
}

}  // namespace loadgen
