// First-match access decisions.
#include "backend/access_rules.h"

#include "mqtt/topic.h"

namespace backend {

bool AccessRules::MayPublish(std::string_view topic) const {
  for (const AccessRule& r : rules_) {
    if (r.publish && mqtt::TopicMatches(r.filter, topic)) return r.allow;
  }
  return true;
}

bool AccessRules::MaySubscribe(std::string_view filter) const {
  for (const AccessRule& r : rules_) {
    if (!r.subscribe) continue;
    if (mqtt::FilterCovers(r.filter, filter)) return r.allow;
    if (!r.allow && mqtt::FiltersOverlap(r.filter, filter)) return false;
  }
  return true;
}

}  // namespace backend
