// How a pool chooses a backend for a new connection: the interface every strategy implements.
//
// A strategy is pure: it sees the pool as a list of BackendView (name, effective weight, whether
// the backend may be chosen, its active connections) and a key, and returns an index into that
// list. It does no I/O and keeps no clock. Health, draining, slow start and the connection counts
// of other proxies are the caller's business; they arrive here already folded into `eligible`,
// `weight` and `active`.
//
// The caller bumps `generation` whenever names, weights or eligibility change, so a strategy can
// cache what it derives from them (a Maglev table) and rebuild only then. `exclude` marks backends
// tried already for this connection (a retry after a failed connect) or full, without a new
// generation.
//
// Instances are not thread-safe; the proxy keeps one per I/O thread and pool. What must be shared
// between them arrives in the view: `active` counts every thread's connections, and `turn` numbers
// the picks of the pool across threads, so that rotating strategies rotate once for the proxy
// rather than once per thread (three connections to three backends go to three backends, whichever
// threads accept them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace balancer {

struct BackendView {
  std::string_view name;  // stable identity, the same on every proxy
  uint32_t weight = 1;    // > 0 for an eligible backend
  bool eligible = true;   // up, not draining
  uint64_t active = 0;    // connections now, across the proxy tier where known
};

struct PoolView {
  std::span<const BackendView> backends;
  uint64_t generation = 0;  // changes whenever names, weights or eligibility change
  // This pick's number in the pool's rotation, shared by all threads. A retry takes none and
  // sees the next one.
  uint64_t turn = 0;
  // Another attempt for a connection whose backend failed (those tried are in `exclude`). A
  // first pick may have exclusions too: backends that are full.
  bool retry = false;
};

class Strategy {
 public:
  virtual ~Strategy() = default;

  // An eligible backend not in `exclude` (indexed like pool.backends; may be empty), or nullopt
  // when there is none. `key` is the client id or source address for hashing strategies.
  virtual std::optional<size_t> Pick(const PoolView& pool, std::string_view key,
                                     std::span<const bool> exclude) = 0;
};

enum class StrategyKind { kWeightedRoundRobin, kLeastConnections, kSourceHash };

// `maglev_table_size`: source-hash's table, a prime (MaglevTable).
std::unique_ptr<Strategy> MakeStrategy(StrategyKind kind, uint32_t maglev_table_size);

// True when `i` may be chosen: eligible, with weight, and not excluded.
inline bool Choosable(const PoolView& pool, std::span<const bool> exclude, size_t i) {
  const BackendView& b = pool.backends[i];
  return b.eligible && b.weight > 0 && (exclude.empty() || !exclude[i]);
}

}  // namespace balancer
