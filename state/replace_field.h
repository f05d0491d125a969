// Compare-and-set on one field of a Redis hash, in one script.
#pragma once

#include <string>
#include <vector>

namespace state {

// An EVAL command that sets `field` of the hash `key` to `value` only if it holds `expected` now
// (an empty `expected`: only if the field is absent, or empty). Replies 1 if it set the field,
// 0 if not.
std::vector<std::string> ReplaceFieldCommand(std::string key, std::string field,
                                             std::string expected, std::string value);

}  // namespace state
