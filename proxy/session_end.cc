// SessionEnd names.
#include "proxy/session_end.h"

namespace proxy {

std::string_view SessionEndName(SessionEnd e) {
  switch (e) {
    case SessionEnd::kClientClosed:
      return "client closed";
    case SessionEnd::kBackendClosed:
      return "backend closed";
    case SessionEnd::kClientError:
      return "client error";
    case SessionEnd::kBackendError:
      return "backend error";
    case SessionEnd::kIdleTimeout:
      return "idle timeout";
    case SessionEnd::kBackendDown:
      return "backend down";
    case SessionEnd::kBackendRemoved:
      return "backend removed";
    case SessionEnd::kBackupReleased:
      return "backup released";
    case SessionEnd::kOperator:
      return "closed by operator";
    case SessionEnd::kStopping:
      return "proxy stopping";
  }
  return "?";
}

}  // namespace proxy
