// A 64-bit string hash that is the same on every machine and in every process, unlike
// std::hash and absl::Hash: proxies hash client ids and backend names independently and must
// agree. FNV-1a over the bytes (seeded), then MurmurHash3's fmix64 finalizer so that similar
// strings ("client-1", "client-2") spread over the whole range.
#pragma once

#include <cstdint>
#include <string_view>

namespace balancer {

constexpr uint64_t Fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

constexpr uint64_t StableHash(std::string_view s, uint64_t seed = 0) {
  uint64_t h = 0xcbf29ce484222325ULL ^ Fmix64(seed);
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return Fmix64(h);
}

}  // namespace balancer
