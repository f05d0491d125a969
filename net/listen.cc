// Listening sockets.
#include "net/listen.h"

#include <fmt/format.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>

namespace net {

namespace asio = boost::asio;
using asio::ip::tcp;

absl::StatusOr<std::vector<tcp::endpoint>> ResolveAll(const base::HostPort& address) {
  boost::system::error_code ec;
  asio::ip::address ip = asio::ip::make_address(address.host, ec);
  if (!ec) return std::vector<tcp::endpoint>{tcp::endpoint(ip, address.port)};
  asio::io_context io;
  tcp::resolver resolver(io);
  auto results = resolver.resolve(address.host, std::to_string(address.port), ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("cannot resolve \"{}\": {}", address.host, ec.message()));
  }
  std::vector<tcp::endpoint> out;
  for (const auto& r : results)
    out.push_back(r.endpoint());
  return out;
}

absl::StatusOr<tcp::endpoint> Resolve(const base::HostPort& address) {
  absl::StatusOr<std::vector<tcp::endpoint>> all = ResolveAll(address);
  if (!all.ok()) return all.status();
  return all->front();
}

absl::StatusOr<tcp::acceptor> Listen(asio::io_context& io, const tcp::endpoint& endpoint,
                                     bool reuse_port) {
  tcp::acceptor acceptor(io);
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && reuse_port) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec.assign(errno, boost::system::system_category());
    }
  }
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(fmt::format("cannot listen on {}:{}: {}",
                                              endpoint.address().to_string(), endpoint.port(),
                                              ec.message()));
  }
  return acceptor;
}

void SetNoDelay(tcp::socket& socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
}

}  // namespace net
