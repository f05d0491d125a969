// What every load generator payload starts with: which publisher sent it, its sequence number,
// and when (steady clock, nanoseconds), so that the receiving side can measure latency end to end
// and detect loss, duplicates and reordering per publisher. The rest of the payload is filler.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace loadgen {

struct Stamp {
  uint32_t publisher = 0;
  uint64_t sequence = 0;
  int64_t sent_ns = 0;
};

inline constexpr size_t kStampBytes = 4 + 8 + 8;

// Overwrites the start of `payload` (at least kStampBytes long) with `stamp`.
inline void WriteStamp(const Stamp& stamp, std::string& payload) {
  std::memcpy(payload.data(), &stamp.publisher, 4);
  std::memcpy(payload.data() + 4, &stamp.sequence, 8);
  std::memcpy(payload.data() + 12, &stamp.sent_ns, 8);
}

inline std::optional<Stamp> ReadStamp(std::string_view payload) {
  if (payload.size() < kStampBytes) return std::nullopt;
  Stamp s;
  std::memcpy(&s.publisher, payload.data(), 4);
  std::memcpy(&s.sequence, payload.data() + 4, 8);
  std::memcpy(&s.sent_ns, payload.data() + 12, 8);
  return s;
}

}  // namespace loadgen
