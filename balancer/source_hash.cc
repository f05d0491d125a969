// Source hashing over a Maglev table of the eligible backends.
#include "balancer/source_hash.h"

#include "balancer/hash.h"

namespace balancer {

void SourceHash::Rebuild(const PoolView& pool) {
  std::vector<MaglevTable::Entry> entries;
  members_.clear();
  for (size_t i = 0; i < pool.backends.size(); ++i) {
    const BackendView& b = pool.backends[i];
    if (!b.eligible || b.weight == 0) continue;
    entries.push_back({b.name, b.weight});
    members_.push_back(i);
  }
  table_ = MaglevTable::Build(entries, table_size_);
  generation_ = pool.generation;
  pool_size_ = pool.backends.size();
}

std::optional<size_t> SourceHash::Pick(const PoolView& pool, std::string_view key,
                                       std::span<const bool> exclude) {
  if (pool.generation != generation_ || pool.backends.size() != pool_size_) Rebuild(pool);
  if (table_.empty()) return std::nullopt;
  uint64_t h = StableHash(key);
  size_t first = h % table_.size();
  // Every member owns at least one slot (the table has more slots than a pool has backends), so
  // a full turn of the table finds any that is allowed.
  for (size_t probe = 0; probe < table_.size(); ++probe) {
    size_t candidate = members_[table_.Slot(first + probe)];
    if (exclude.empty() || !exclude[candidate]) return candidate;
  }
  return std::nullopt;
}

}  // namespace balancer
