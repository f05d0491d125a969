// Access rules from the configuration's ordered [[acl]] list: who may publish to which topics and
// subscribe to which filters. The first rule that applies decides; with none, access is allowed.
//
// For a publish, a rule applies when its filter matches the topic. A subscription is a filter,
// not a topic, so a rule applies to it in one of two ways:
//   - the rule's filter covers the subscription's (every topic the subscription can match, the
//     rule matches too): the rule's action decides;
//   - a deny rule's filter merely overlaps the subscription's: denied, because the subscription
//     would otherwise receive topics the rule forbids.
// Examples with the rules [deny subscribe "secret/#"]:
//   "secret/a"   denied (covered)       "#"       denied (overlaps on secret/...)
//   "public/#"   allowed (no overlap)   "$SYS/#"  allowed ("secret/#" never matches '$' topics)
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace backend {

struct AccessRule {
  bool allow = true;
  bool publish = true;    // applies to publishing
  bool subscribe = true;  // applies to subscribing
  std::string filter;     // a valid topic filter
};

class AccessRules {
 public:
  AccessRules() = default;
  explicit AccessRules(std::vector<AccessRule> rules) : rules_(std::move(rules)) {}

  bool MayPublish(std::string_view topic) const;
  // `filter` is the subscription's filter; for a shared subscription, the part after the group.
  bool MaySubscribe(std::string_view filter) const;
  bool empty() const { return rules_.empty(); }

 private:
  std::vector<AccessRule> rules_;
};

}  // namespace backend
