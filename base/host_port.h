// "HOST:PORT" addresses as they appear in configuration files and flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace base {

struct HostPort {
  std::string host;  // a name or an address; IPv6 without brackets
  uint16_t port = 0;

  std::string ToString() const;  // brackets IPv6 hosts: "[::1]:1883"
  bool operator==(const HostPort&) const = default;
};

// Parses "host:port", "[v6]:port" or ":port" (all interfaces). The port may be 0 (any free one).
[[nodiscard]] absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

}  // namespace base
