// HeartbeatCommand: one script, so that the stamp and the cut-off come from the same clock.
#include "state/heartbeat.h"

#include <algorithm>

namespace state {

namespace {

// KEYS[1] the ZSET; ARGV[1] the member, ARGV[2] the window, ARGV[3] the forget age (ms).
// TIME is allowed in scripts since Redis 5 (effects replication).
constexpr const char* kHeartbeat =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('ZADD', KEYS[1], now, ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3])) "
    "return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')";

}  // namespace

std::vector<std::string> HeartbeatCommand(std::string key, std::string member,
                                          std::chrono::milliseconds window) {
  return {"EVAL",
          kHeartbeat,
          "1",
          std::move(key),
          std::move(member),
          std::to_string(window.count()),
          std::to_string(std::max(kHeartbeatForget, 2 * window).count())};
}

}  // namespace state
