// Topic names and topic filters (MQTT 5.0 §4.7): validation, matching, and the relations between
// two filters that access rules need.
//
// Levels are separated by '/'; '+' matches exactly one level (an empty one too) and '#' the rest,
// including the parent level itself. Filters beginning with a wildcard do not match topics
// beginning with '$' (§4.7.2), so that "#" never sees "$SYS/...". Examples:
//
//   filter           topic            matches
//   sport/#          sport            yes ('#' includes the parent level)
//   sport/+/player1  sport//player1   yes ('+' matches the empty level)
//   +/monitor        $SYS/monitor     no  (first-level wildcard, '$' topic)
//   $SYS/#           $SYS/monitor     yes
//   sport+           -                invalid filter ('+' must fill its level)
#pragma once

#include <optional>
#include <string_view>

namespace mqtt {

// At least one character, no '+' or '#' (§4.7.3). UTF-8 validity is the decoder's job.
bool IsValidTopicName(std::string_view topic);

// At least one character; '+' and '#' each fill a whole level, '#' only as the last level.
bool IsValidTopicFilter(std::string_view filter);

// Whether `topic` (a valid name) matches `filter` (a valid, non-shared filter).
bool TopicMatches(std::string_view filter, std::string_view topic);

// The filter relations below take plain filters; for a shared subscription, pass the part after
// "$share/GROUP/" (see ParseSharedFilter).

// True when every topic `inner` matches is matched by `outer` too: "a/#" covers "a/+/b".
bool FilterCovers(std::string_view outer, std::string_view inner);

// True when some topic is matched by both filters: "a/+" and "+/b" overlap on "a/b".
bool FiltersOverlap(std::string_view a, std::string_view b);

// A shared subscription "$share/GROUP/FILTER" (§4.8.2) taken apart.
struct SharedFilter {
  std::string_view group;
  std::string_view filter;
};

// Splits a shared subscription. nullopt when `filter` does not begin with "$share/"; an empty
// group means the shared subscription is invalid (no group, a wildcard in the group, or no valid
// filter after it).
std::optional<SharedFilter> ParseSharedFilter(std::string_view filter);

}  // namespace mqtt
