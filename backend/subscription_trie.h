// Subscriptions indexed by topic filter level, so that matching a topic costs what its own levels
// cost, whatever else is subscribed.
//
// Each node is one level of some filter; '+' and '#' are children of their own. Matching walks the
// topic's levels once, following at each node the literal child (one hash lookup), the '+' child
// and the '#' child: at most three branches per level, none of them touching unrelated filters.
// Matching "a/b" against 1,000,000 other subscriptions costs the same as against 10.
//
// Shared subscriptions ($share/GROUP/FILTER, MQTT 5.0 §4.8.2) sit at their filter's node, one
// member list per group; a match delivers to one member per group, chosen round robin.
//
// Not thread-safe: each broker shard keeps its own replica (see shard.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "mqtt/packet.h"

namespace backend {

// One subscription as routing sees it: who, where, with which options.
struct Subscriber {
  uint64_t session_id = 0;
  uint32_t shard = 0;  // the shard that owns the session
  mqtt::SubscriptionOptions options;
  uint32_t subscription_id = 0;  // 0: none
  bool shared = false;           // set by Match for members of shared groups
};

// Heterogeneous lookup of std::string keys by std::string_view. Hashed as an absl::string_view:
// Debian's Abseil has a string_view of its own, and absl::Hash<std::string_view> falls back to
// std::hash, a slower hash of the bytes, then mixes its result once more.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};
struct StringViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
template <typename V>
using StringMap = absl::flat_hash_map<std::string, V, StringViewHash, StringViewEq>;

class SubscriptionTrie {
 public:
  SubscriptionTrie();
  ~SubscriptionTrie();
  SubscriptionTrie(SubscriptionTrie&&) noexcept;
  SubscriptionTrie& operator=(SubscriptionTrie&&) noexcept;

  // Adds the subscription of `s.session_id` to `filter` (a valid filter, without "$share/"), in
  // shared `group` if not empty, replacing the session's earlier one to the same filter and group.
  // Returns true when it is new.
  bool Add(std::string_view filter, std::string_view group, const Subscriber& s);
  // Returns true when the subscription existed.
  bool Remove(std::string_view filter, std::string_view group, uint64_t session_id);

  // A shared group matched by a topic, as Match hands it over.
  class SharedGroup {
   public:
    std::string_view group() const { return group_; }
    std::string_view filter() const { return filter_; }
    std::span<const Subscriber> members() const { return members_; }
    // The next member, round robin (with `shared` set).
    Subscriber Pick() {
      Subscriber chosen = members_[next_++ % members_.size()];
      chosen.shared = true;
      return chosen;
    }
    // Advances the round robin by one and returns the position it was at; for callers that
    // spread a group's messages over more than these members (other nodes' too).
    size_t Turn() { return next_++; }

   private:
    friend class SubscriptionTrie;
    std::string group_;
    std::string filter_;
    std::vector<Subscriber> members_;  // sorted by session id, so that replicas agree
    size_t next_ = 0;                  // round-robin cursor
  };

  // Calls `visit(const Subscriber&)` for every non-shared subscription matching `topic`, and
  // `visit_group(SharedGroup&)` for every matching shared group. A session subscribed through
  // several matching filters is visited once per filter; the caller merges.
  template <typename Visit, typename VisitGroup>
  void Match(std::string_view topic, Visit&& visit, VisitGroup&& visit_group);
  // The same, with one member picked round robin from each shared group (`shared` set).
  template <typename Visit>
  void Match(std::string_view topic, Visit&& visit) {
    Match(topic, visit, [&visit](SharedGroup& g) { visit(g.Pick()); });
  }

  // The shared group `group` of exactly `filter` (not a match: the filter's own node), or null.
  SharedGroup* FindGroup(std::string_view filter, std::string_view group);

  size_t size() const { return size_; }

 private:
  struct Node;
  struct Node {
    StringMap<std::unique_ptr<Node>> children;
    std::unique_ptr<Node> plus;
    std::unique_ptr<Node> hash;
    absl::flat_hash_map<uint64_t, Subscriber> subscribers;
    StringMap<SharedGroup> groups;
    bool empty() const {
      return children.empty() && !plus && !hash && subscribers.empty() && groups.empty();
    }
  };

  // One step of a path from the root: the parent, its slot for the child, the child's level.
  struct Step {
    Node* parent;
    std::unique_ptr<Node>* slot;
    std::string_view level;
  };
  // The node of `filter` if it exists, else null; with `path`, the steps that lead to it.
  Node* Descend(std::string_view filter, std::vector<Step>* path) const;
  // The existing child of `node` for one filter level ("+", "#" or a name), or null.
  static std::unique_ptr<Node>* ChildSlot(Node& node, std::string_view level);
  template <typename Visit, typename VisitGroup>
  static void Emit(Node& node, Visit& visit, VisitGroup& visit_group);
  template <typename Visit, typename VisitGroup>
  static void Walk(Node& node, std::string_view rest, bool done, bool first, Visit& visit,
                   VisitGroup& visit_group);

  std::unique_ptr<Node> root_;
  size_t size_ = 0;
};

template <typename Visit, typename VisitGroup>
void SubscriptionTrie::Emit(Node& node, Visit& visit, VisitGroup& visit_group) {
  for (const auto& [id, s] : node.subscribers)
    visit(s);
  for (auto& [name, group] : node.groups)
    visit_group(group);
}

// `rest` holds the levels not consumed yet; `done` means there are none (the node matched the
// whole topic). A '$' first level is skipped by wildcards (§4.7.2).
template <typename Visit, typename VisitGroup>
void SubscriptionTrie::Walk(Node& node, std::string_view rest, bool done, bool first, Visit& visit,
                            VisitGroup& visit_group) {
  if (done) {
    Emit(node, visit, visit_group);
    if (node.hash) Emit(*node.hash, visit, visit_group);  // "a/#" matches "a"
    return;
  }
  size_t slash = rest.find('/');
  std::string_view level = rest.substr(0, slash);
  bool last = slash == std::string_view::npos;
  std::string_view next = last ? std::string_view() : rest.substr(slash + 1);
  bool wildcards_apply = !(first && !level.empty() && level[0] == '$');
  if (wildcards_apply) {
    if (node.hash) Emit(*node.hash, visit, visit_group);
    if (node.plus) Walk(*node.plus, next, last, false, visit, visit_group);
  }
  auto it = node.children.find(level);
  if (it != node.children.end()) Walk(*it->second, next, last, false, visit, visit_group);
}

template <typename Visit, typename VisitGroup>
void SubscriptionTrie::Match(std::string_view topic, Visit&& visit, VisitGroup&& visit_group) {
  Walk(*root_, topic, false, true, visit, visit_group);
}

}  // namespace backend
