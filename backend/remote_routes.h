// The routes of the other nodes of the cluster, as one shard sees them: which nodes have
// subscribers for which filters, so that a publish is forwarded once to each node that needs it.
//
// A route is a node and a field: a filter of non-shared subscriptions, or "$share/GROUP/FILTER"
// with the number of the node's members in that shared subscription. The routes sit in a
// subscription trie (node index as the subscriber, member count as its subscription id), so
// matching a topic against the cluster's routes costs what matching it locally does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "backend/subscription_trie.h"

namespace backend {

class RemoteRoutes {
 public:
  // Sets the route `field` of `node`: its count, or none when 0.
  void Set(uint32_t node, std::string_view field, uint32_t count);
  // Removes every route of `node` (it left the cluster).
  void ClearNode(uint32_t node);

  // Calls `visit(node)` for each node with a matching non-shared route (once per matching
  // filter), and `visit_group(SubscriptionTrie::SharedGroup&)` for each matching shared
  // subscription, whose members are (node in session_id, member count in subscription_id).
  template <typename Visit, typename VisitGroup>
  void Match(std::string_view topic, Visit&& visit, VisitGroup&& visit_group) {
    trie_.Match(
        topic, [&](const Subscriber& s) { visit(static_cast<uint32_t>(s.session_id)); },
        visit_group);
  }

  size_t size() const { return trie_.size(); }

 private:
  SubscriptionTrie trie_;
  absl::flat_hash_map<uint32_t, StringMap<uint32_t>> by_node_;  // node -> field -> count
};

}  // namespace backend
