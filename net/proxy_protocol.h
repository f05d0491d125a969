// The PROXY protocol, version 2 (haproxy.org/download/2.6/doc/proxy-protocol.txt, §2.2): the
// binary header a proxy sends first on a backend connection to tell the backend who the client
// really is. The proxy writes it; the broker, when configured to expect it, reads it before the
// CONNECT, and so does the proxy behind another load balancer (accept_proxy_protocol).
//
//   12-byte signature, 0x21 (version 2, PROXY), family (0x11 TCP/IPv4, 0x21 TCP/IPv6),
//   2-byte length, then source and destination addresses and ports; TLVs may follow (skipped).
//   A LOCAL command (0x20) carries no addresses: a health check from the proxy itself.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace net {

struct ProxyHeader {
  // No addresses to take: the LOCAL command (no client behind this connection), or PROXY with
  // the UNSPEC family (the sender could not tell). Either way the connection's own addresses stand.
  bool local = false;
  boost::asio::ip::tcp::endpoint source;
  boost::asio::ip::tcp::endpoint destination;
  size_t size = 0;  // bytes the header took
};

// The header for a client connection from `source` to the proxy's `destination`. Both endpoints
// must have the same address family (IPv4-mapped IPv6 is sent as IPv4).
std::string EncodeProxyV2(const boost::asio::ip::tcp::endpoint& source,
                          const boost::asio::ip::tcp::endpoint& destination);

// The header of a connection the proxy opens for itself (a health check): LOCAL, no addresses.
std::string EncodeProxyV2Local();

// Parses a header at the start of `data`: nullopt while incomplete; an error when `data` does not
// start with a valid v2 header (and cannot become one).
[[nodiscard]] absl::StatusOr<std::optional<ProxyHeader>> ParseProxyV2(std::string_view data);

}  // namespace net
