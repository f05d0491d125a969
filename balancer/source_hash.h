// Consistent source hashing: the same key (MQTT client id or source address) goes to the same
// backend on every proxy, and when a backend leaves, only about its share of keys move. A Maglev
// table over the eligible backends (see maglev.h), rebuilt when the pool's generation changes.
//
// When the chosen backend is excluded (a retry after a failed connect), the next slots of the
// table are probed in order: the key's second choice, still the same on every proxy.
#pragma once

#include <vector>

#include "balancer/maglev.h"
#include "balancer/strategy.h"

namespace balancer {

class SourceHash : public Strategy {
 public:
  explicit SourceHash(uint32_t table_size = MaglevTable::kDefaultSize) : table_size_(table_size) {}

  std::optional<size_t> Pick(const PoolView& pool, std::string_view key,
                             std::span<const bool> exclude) override;

 private:
  void Rebuild(const PoolView& pool);

  uint32_t table_size_;
  MaglevTable table_;
  std::vector<size_t> members_;  // table index -> pool index
  uint64_t generation_ = UINT64_MAX;
  size_t pool_size_ = 0;
};

}  // namespace balancer
