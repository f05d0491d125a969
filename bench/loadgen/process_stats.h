// CPU time and resident memory of this process and of others (by pid), read from /proc: the load
// generator reports its own CPU use, so that a run where it was the bottleneck says so, and the
// CPU seconds and memory of the processes it measures.
#pragma once

#include <sys/types.h>

#include <optional>

namespace loadgen {

struct ProcessSample {
  double cpu_seconds = 0;  // user + system since the process started
  long rss_kib = 0;        // resident set size
};

// nullopt when the process does not exist (any more).
std::optional<ProcessSample> SampleProcess(pid_t pid);
ProcessSample SampleSelf();

}  // namespace loadgen
