// HostPort parsing.
#include "base/host_port.h"

#include <fmt/format.h>

#include <charconv>

namespace base {

std::string HostPort::ToString() const {
  bool v6 = host.find(':') != std::string::npos;
  return v6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  auto error = [&] {
    return absl::InvalidArgumentError(fmt::format("expected HOST:PORT, got \"{}\"", text));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return error();
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return error();  // an IPv6 address needs brackets
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return error();
  }
  return HostPort{host.empty() ? "0.0.0.0" : std::string(host), static_cast<uint16_t>(port)};
}

}  // namespace base
