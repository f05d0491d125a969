// HeartbeatCommand: one script, so that the stamp and the cut-off come from the same clock.
#include "state/heartbeat.h"

#include <algorithm>

namespace state {

namespace {

// KEYS[1] the ZSET, KEYS[2] (optional) the fence; ARGV[1] the member, ARGV[2] the window, ARGV[3]
// the forget age (ms), ARGV[4] (with a fence) this run's incarnation.
// TIME is allowed in scripts since Redis 5 (effects replication).
constexpr const char* kHeartbeat =
    "if #KEYS > 1 then "
    "  local fence = redis.call('GET', KEYS[2]) "
    "  if fence and string.find(fence, ARGV[4] .. ' ', 1, true) == 1 then return fence end "
    "end "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('ZADD', KEYS[1], now, ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3])) "
    "return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')";

}  // namespace

std::vector<std::string> HeartbeatCommand(std::string key, std::string member,
                                          std::chrono::milliseconds window,
                                          std::optional<Fence> fence) {
  std::vector<std::string> command = {"EVAL", kHeartbeat, fence ? "2" : "1", std::move(key)};
  if (fence) command.push_back(std::move(fence->key));
  command.push_back(std::move(member));
  command.push_back(std::to_string(window.count()));
  command.push_back(std::to_string(std::max(kHeartbeatForget, 2 * window).count()));
  if (fence) command.push_back(std::move(fence->incarnation));
  return command;
}

}  // namespace state
