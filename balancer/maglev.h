// Maglev consistent hashing: a lookup table from which a key's hash picks a backend, such that
// every backend owns a share of the slots proportional to its weight, and removing one backend
// moves little more than its own share of keys.
//
// Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016,
// §3.4. Each backend has a preference list of slots, the permutation
//   slot_j = (offset + j * skip) mod M,  offset = h1(name) mod M,  skip = h2(name) mod (M-1) + 1,
// and the backends take turns claiming their next preferred free slot until the table is full.
// Weights (as in Envoy's and Katran's weighted Maglev): in each round a backend earns its weight
// in credit and claims one slot per max_weight of credit, so slot counts follow weights. Every
// backend owns at least one slot while the table has more slots than backends.
//
// The table is a pure function of the (name, weight) pairs, not of their order: every proxy
// builds the same table. M must be prime (so every skip visits every slot); 65537 by default.
//
//   MaglevTable t = MaglevTable::Build({{"b1", 1}, {"b2", 1}, {"b3", 2}}, 65537);
//   size_t backend = t.Lookup(StableHash(client_id));  // an index into the list given to Build
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace balancer {

class MaglevTable {
 public:
  struct Entry {
    std::string_view name;
    uint32_t weight;
  };
  static constexpr uint32_t kDefaultSize = 65537;

  // Builds a table of `size` slots (a prime) over `backends` (weights > 0). An empty list gives an
  // empty table. Cost: O(size * log) on average; 65537 slots and 10 backends take about a
  // millisecond.
  static MaglevTable Build(const std::vector<Entry>& backends, uint32_t size = kDefaultSize);

  // The backend (index into the list given to Build) for a key's hash. The table must not be
  // empty.
  size_t Lookup(uint64_t key_hash) const { return slots_[key_hash % slots_.size()]; }
  // The backend of slot `i`, for probing past excluded backends.
  size_t Slot(size_t i) const { return slots_[i % slots_.size()]; }
  size_t size() const { return slots_.size(); }
  bool empty() const { return slots_.empty(); }

 private:
  std::vector<uint32_t> slots_;
};

// True for primes; for validating configured table sizes.
bool IsPrime(uint32_t n);

}  // namespace balancer
