// RemoteRoutes.
#include "backend/remote_routes.h"

#include <vector>

#include "mqtt/topic.h"

namespace backend {

namespace {

struct Key {
  std::string_view filter;
  std::string_view group;  // empty: not shared
};

Key Split(std::string_view field) {
  if (std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(field)) {
    return {shared->filter, shared->group};
  }
  return {field, {}};
}

}  // namespace

void RemoteRoutes::Set(uint32_t node, std::string_view field, uint32_t count) {
  Key key = Split(field);
  if (key.filter.empty() || !mqtt::IsValidTopicFilter(key.filter)) return;  // not ours to trust
  StringMap<uint32_t>& fields = by_node_[node];
  if (count == 0) {
    if (fields.erase(field) > 0) trie_.Remove(key.filter, key.group, node);
    if (fields.empty()) by_node_.erase(node);
    return;
  }
  fields[field] = count;
  trie_.Add(key.filter, key.group, Subscriber{.session_id = node, .subscription_id = count});
}

void RemoteRoutes::ClearNode(uint32_t node) {
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return;
  std::vector<std::string> fields;
  for (const auto& [field, count] : it->second)
    fields.push_back(field);
  for (const std::string& f : fields)
    Set(node, f, 0);
}

}  // namespace backend
