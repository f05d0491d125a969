// Process-wide logging on spdlog: one line per event on stderr, with time, level and process.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace base {

// Sets up the default logger. `level` is one of trace, debug, info, warn, error, off.
[[nodiscard]] absl::Status InitLogging(std::string_view process, std::string_view level);

}  // namespace base
