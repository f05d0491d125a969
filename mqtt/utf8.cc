// A table-free UTF-8 validator following the well-formed byte sequences of Unicode 15, Table 3-7.
#include "mqtt/utf8.h"

#include <cstdint>
#include <cstring>

namespace mqtt {

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* end = p + text.size();
  constexpr uint64_t kLow = 0x0101010101010101, kHigh = 0x8080808080808080;
  while (p < end) {
    // Eight bytes at a time while they are ASCII and none is zero (most topics and payloads).
    uint64_t word;
    if (end - p >= 8 && (std::memcpy(&word, p, 8), ((word | (word - kLow)) & kHigh) == 0)) {
      p += 8;
      continue;
    }
    uint8_t c = *p;
    if (c >= 0x01 && c < 0x80) {  // ASCII, but U+0000 is forbidden by MQTT
      ++p;
      continue;
    }
    auto cont = [&](int i, uint8_t lo = 0x80, uint8_t hi = 0xBF) {
      return p + i < end && p[i] >= lo && p[i] <= hi;
    };
    if (c >= 0xC2 && c <= 0xDF) {
      if (!cont(1)) return false;
      p += 2;
    } else if (c == 0xE0) {
      if (!cont(1, 0xA0) || !cont(2)) return false;  // no overlong 3-byte forms
      p += 3;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      if (!cont(1) || !cont(2)) return false;
      p += 3;
    } else if (c == 0xED) {
      if (!cont(1, 0x80, 0x9F) || !cont(2)) return false;  // no surrogates
      p += 3;
    } else if (c == 0xF0) {
      if (!cont(1, 0x90) || !cont(2) || !cont(3)) return false;
      p += 4;
    } else if (c >= 0xF1 && c <= 0xF3) {
      if (!cont(1) || !cont(2) || !cont(3)) return false;
      p += 4;
    } else if (c == 0xF4) {
      if (!cont(1, 0x80, 0x8F) || !cont(2) || !cont(3)) return false;  // up to U+10FFFF
      p += 4;
    } else {
      return false;  // U+0000, a stray continuation byte, or a lead byte never used
    }
  }
  return true;
}

}  // namespace mqtt
