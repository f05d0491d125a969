// Heartbeats on Redis's clock: how proxies and broker nodes tell who is alive.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace state {

// How long a silent member stays in its heartbeat set before a beat removes it: a minute, or
// twice the window if that is longer (a member beats at least twice per window).
inline constexpr std::chrono::milliseconds kHeartbeatForget{60'000};

// An EVAL command that stamps `member` in the ZSET `key` with Redis's own time (TIME), removes
// members silent for longer than they are remembered (kHeartbeatForget), and replies with the
// members heard within `window` (`member` among them). Every writer and reader uses the one clock,
// Redis's, so the processes sharing a Redis need no synchronised clocks.
std::vector<std::string> HeartbeatCommand(std::string key, std::string member,
                                          std::chrono::milliseconds window);

}  // namespace state
