// Maglev table population (NSDI 2016, §3.4, Pseudocode 1), weighted by credit.
#include "balancer/maglev.h"

#include <algorithm>
#include <numeric>

#include "balancer/hash.h"

namespace balancer {

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

MaglevTable MaglevTable::Build(const std::vector<Entry>& backends, uint32_t size) {
  MaglevTable table;
  if (backends.empty()) return table;
  // Visit backends in name order so that the table does not depend on configuration order.
  std::vector<size_t> order(backends.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return backends[a].name < backends[b].name; });

  size_t n = backends.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0), credit(n, 0);
  uint32_t max_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    offset[i] = StableHash(backends[i].name, 0x6d61676c) % size;          // "magl"
    skip[i] = StableHash(backends[i].name, 0x65762121) % (size - 1) + 1;  // "ev!!"
    max_weight = std::max(max_weight, backends[i].weight);
  }
  constexpr uint32_t kEmpty = UINT32_MAX;
  table.slots_.assign(size, kEmpty);
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t i : order) {
      credit[i] += backends[i].weight;
      while (credit[i] >= max_weight && filled < size) {
        credit[i] -= max_weight;
        // The next slot of i's permutation that is still free.
        uint64_t slot;
        do {
          slot = (offset[i] + next[i] * skip[i]) % size;
          ++next[i];
        } while (table.slots_[slot] != kEmpty);
        table.slots_[slot] = static_cast<uint32_t>(i);
        ++filled;
      }
    }
  }
  // A backend far lighter than the others (1 beside 66 of 1000) may find the table full before
  // it earned a slot. It takes the first slot of its permutation whose owner has others to
  // spare, so that it stays reachable (a client hashed to an excluded backend probes on).
  std::vector<uint32_t> owned(n, 0);
  for (uint32_t owner : table.slots_)
    ++owned[owner];
  for (size_t i : order) {
    if (owned[i] > 0) continue;
    for (uint64_t j = 0; j < size; ++j) {
      uint64_t slot = (offset[i] + j * skip[i]) % size;
      uint32_t& owner = table.slots_[slot];
      if (owned[owner] < 2) continue;
      --owned[owner];
      owner = static_cast<uint32_t>(i);
      owned[i] = 1;
      break;
    }
  }
  return table;
}

}  // namespace balancer
