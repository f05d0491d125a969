// Why a proxied session ended: the first of these to happen. For the access log (and the close
// hooks that write it).
#pragma once

#include <cstdint>
#include <string_view>

namespace proxy {

enum class SessionEnd : uint8_t {
  kClientClosed,    // the client's end of stream
  kBackendClosed,   // the backend's
  kClientError,     // a reset or another error on the client's socket
  kBackendError,    // on the backend's
  kIdleTimeout,     // nothing moved for the idle timeout
  kBackendDown,     // on_down closed the sessions of a backend its checks took down
  kBackendRemoved,  // a reload removed the backend
  kBackupReleased,  // on_up closed the sessions of a backup: another backend came up
  kOperator,        // closed through the admin API (shutdown-sessions)
  kStopping,        // the proxy is stopping
};

// "client closed", "backend error", ...
std::string_view SessionEndName(SessionEnd e);

}  // namespace proxy
