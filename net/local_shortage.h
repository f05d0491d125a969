// Whether a failed socket() or connect() was this process's own shortage (out of descriptors,
// buffers, memory or local ports) rather than the peer's doing: such a failure says nothing about
// the backend and must not count against it (the proxy's connects and its health checks).
#pragma once

#include <cerrno>

namespace net {

inline bool IsLocalShortage(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM ||
         error == EADDRNOTAVAIL;
}

}  // namespace net
