// ReplaceFieldCommand.
#include "state/replace_field.h"

namespace state {

namespace {

// KEYS[1] the hash; ARGV[1] the field, ARGV[2] the value expected, ARGV[3] the new value.
constexpr const char* kReplaceField =
    "if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) "
    "return 1";

}  // namespace

std::vector<std::string> ReplaceFieldCommand(std::string key, std::string field,
                                             std::string expected, std::string value) {
  return {"EVAL",          kReplaceField,    "1",
          std::move(key),  std::move(field), std::move(expected),
          std::move(value)};
}

}  // namespace state
