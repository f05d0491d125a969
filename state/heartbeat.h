// Heartbeats on Redis's clock: how proxies and broker nodes tell who is alive.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace state {

// How long a silent member stays in its heartbeat set before a beat removes it: a minute, or
// twice the window if that is longer (a member beats at least twice per window).
inline constexpr std::chrono::milliseconds kHeartbeatForget{60'000};

// A member the others have taken for gone and replaced: `key` holds "INCARNATION REPLACEMENT"
// once they did, INCARNATION naming the run of the member they replaced (a broker node whose
// sessions a survivor adopted). A member that finds its own run there must not beat on.
struct Fence {
  std::string key;
  std::string incarnation;  // this run's
};

// An EVAL command that stamps `member` in the ZSET `key` with Redis's own time (TIME), removes
// members silent for longer than they are remembered (kHeartbeatForget), and replies with the
// members heard within `window` (`member` among them). Every writer and reader uses the one clock,
// Redis's, so the processes sharing a Redis need no synchronised clocks.
//
// With a `fence` that names this run, it stamps nothing and replies with the fence's value (a
// string, not an array): the check and the beat are one step, so that a member replaced is not
// heard again by its heartbeat.
std::vector<std::string> HeartbeatCommand(std::string key, std::string member,
                                          std::chrono::milliseconds window,
                                          std::optional<Fence> fence = std::nullopt);

}  // namespace state
