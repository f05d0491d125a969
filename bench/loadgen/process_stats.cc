// /proc/PID/stat (fields 14 and 15: utime, stime in clock ticks) and /proc/PID/status (VmRSS).
#include "bench/loadgen/process_stats.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace loadgen {

std::optional<ProcessSample> SampleProcess(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid);
  std::ifstream stat(base + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  // The command name (field 2) may contain spaces; fields after it follow the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int i = 3; i <= 13; ++i)
    fields >> skip;
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  ProcessSample s;
  s.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status(base + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      s.rss_kib = std::stol(line.substr(6));
      break;
    }
  }
  return s;
}

ProcessSample SampleSelf() {
  return SampleProcess(getpid()).value_or(ProcessSample{});
}

}  // namespace loadgen
