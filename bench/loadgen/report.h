// Turning measurements into the load generator's output: the JSON object with every figure and a
// summary table for people.
#pragma once

#include <sys/types.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/loadgen/histogram.h"
#include "bench/loadgen/process_stats.h"

namespace loadgen {

// A latency histogram's figures in microseconds: count, min, mean, p50, p90, p99, p99.9, max.
boost::json::object LatencyJson(const Histogram& latency);

// The generator's own CPU use over the measurement; "saturated" when it used at least 90 % of its
// threads, in which case the figures measure the generator as much as the target.
boost::json::object LoadgenCpu(const ProcessSample& before, const ProcessSample& after,
                               double seconds, size_t threads);

// CPU seconds (and per million messages, when `messages` > 0) and memory of watched processes.
boost::json::array WatchedProcesses(const std::vector<pid_t>& pids,
                                    const std::vector<std::optional<ProcessSample>>& before,
                                    const std::vector<std::optional<ProcessSample>>& after,
                                    uint64_t messages);

// Prints the summary table of a run's figures on stdout, and warnings (loss at QoS >= 1, a
// saturated generator) on stderr.
void PrintSummary(const boost::json::object& result);

[[nodiscard]] absl::Status WriteJson(const std::string& path, const boost::json::object& result);

}  // namespace loadgen
