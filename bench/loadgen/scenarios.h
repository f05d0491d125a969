// The load generator's scenarios. Each runs to completion and returns its figures as a JSON
// object (see report.h for how they are printed); an error when the run could not be made at all
// (targets unreachable, refused connections).
#pragma once

#include <boost/json/object.hpp>

#include "absl/status/statusor.h"
#include "bench/loadgen/options.h"

namespace loadgen {

// pairs, fan-in, fan-out, shared: publishers and subscribers, latency end to end.
[[nodiscard]] absl::StatusOr<boost::json::object> RunPubSub(const Options& options);
// connect: CONNECT / CONNACK / DISCONNECT cycles.
[[nodiscard]] absl::StatusOr<boost::json::object> RunConnect(const Options& options);
// idle: hold connections, measure the memory of the watched processes.
[[nodiscard]] absl::StatusOr<boost::json::object> RunIdle(const Options& options);

}  // namespace loadgen
