// A client connection from accept until its tunnel starts (DESIGN.md, "One client connection
// through the proxy", steps 2 to 5): read an upstream balancer's PROXY header
// (accept_proxy_protocol), read and check the CONNECT (mqtt listeners), choose a backend
// (sticky record, else the pool's strategy), connect to it with retries, send the PROXY header and
// the CONNECT, and hand both sockets to a Tunnel. A client that cannot be served gets the clear
// answer its protocol allows: a CONNACK "server unavailable" in MQTT, a close in tcp mode.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "proxy/listener_state.h"

namespace proxy {

class Worker;

// Serves the accepted connection `client_fd` (non-blocking, TCP_NODELAY) from `peer`.
boost::asio::awaitable<void> ServeClient(Worker& worker,
                                         std::shared_ptr<const ListenerState> listener,
                                         int client_fd, boost::asio::ip::tcp::endpoint peer);

}  // namespace proxy
