// A listener at run time: its configuration, immutable, and its counters, which outlive
// reloads as long as the listener keeps its name. A reload that changes only a listener's pool or
// timeouts swaps in a new ListenerState with the same counters and keeps the socket.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "proxy/config.h"
#include "proxy/connection_rate.h"

namespace proxy {

// Why a client connection was refused or closed before reaching a backend.
// kLocalResources: the proxy could not open a connection to a backend (out of descriptors,
// buffers or local ports); the backend is not blamed for it. kClientLeft: the client closed
// after its CONNECT, before the backend was reached; its CONNECT is not sent. kMaxConnections:
// the listener had max_connections open; closed at once. kProxyHeader: accept_proxy_protocol,
// and the connection did not start with a valid PROXY v2 header.
enum class RejectReason : uint8_t {
  kConnectTimeout,
  kMalformed,
  kNoBackend,
  kLocalResources,
  kClientLeft,
  kMaxConnections,
  kProxyHeader,
  kCount
};
std::string_view RejectReasonName(RejectReason r);

struct ListenerCounters {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rate_limited{0};  // times a thread stopped accepting for the rate
  ConnectionRate rate;                    // max_connection_rate's state, for every thread
  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> rejected[static_cast<size_t>(RejectReason::kCount)] = {};

  void Reject(RejectReason r) {
    rejected[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
};

struct ListenerState {
  ListenerConfig config;
  std::shared_ptr<ListenerCounters> counters;
};

}  // namespace proxy
