// Opening listening sockets and resolving configured addresses.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "base/host_port.h"

namespace net {

// Resolves a configured address to its endpoints: numeric addresses as they are, names through
// the system resolver, in its order. Blocking; for startup and configuration only.
[[nodiscard]] absl::StatusOr<std::vector<boost::asio::ip::tcp::endpoint>> ResolveAll(
    const base::HostPort& address);
// The first of them.
[[nodiscard]] absl::StatusOr<boost::asio::ip::tcp::endpoint> Resolve(const base::HostPort& address);

// Opens, binds and listens. With `reuse_port`, several acceptors (one per I/O thread) can share
// the address and the kernel spreads connections over them.
[[nodiscard]] absl::StatusOr<boost::asio::ip::tcp::acceptor> Listen(
    boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint, bool reuse_port);

// Sets TCP_NODELAY: MQTT packets are small and latency matters more than coalescing.
void SetNoDelay(boost::asio::ip::tcp::socket& socket);

}  // namespace net
