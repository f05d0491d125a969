// Adding and removing subscriptions; removal prunes the nodes it leaves empty, so the trie's size
// follows the live subscriptions, not their history.
#include "backend/subscription_trie.h"

#include <algorithm>

namespace backend {

SubscriptionTrie::SubscriptionTrie() : root_(std::make_unique<Node>()) {}
SubscriptionTrie::~SubscriptionTrie() = default;
SubscriptionTrie::SubscriptionTrie(SubscriptionTrie&&) noexcept = default;
SubscriptionTrie& SubscriptionTrie::operator=(SubscriptionTrie&&) noexcept = default;

namespace {

// Calls `step(level)` for each level of a filter.
template <typename Step>
void ForEachLevel(std::string_view filter, Step&& step) {
  while (true) {
    size_t slash = filter.find('/');
    step(filter.substr(0, slash));
    if (slash == std::string_view::npos) return;
    filter.remove_prefix(slash + 1);
  }
}

}  // namespace

bool SubscriptionTrie::Add(std::string_view filter, std::string_view group, const Subscriber& s) {
  Node* node = root_.get();
  ForEachLevel(filter, [&](std::string_view level) {
    std::unique_ptr<Node>* slot;
    if (level == "+") {
      slot = &node->plus;
    } else if (level == "#") {
      slot = &node->hash;
    } else {
      slot = &node->children[level];
    }
    if (!*slot) *slot = std::make_unique<Node>();
    node = slot->get();
  });
  bool added;
  if (group.empty()) {
    auto [it, inserted] = node->subscribers.insert_or_assign(s.session_id, s);
    added = inserted;
  } else {
    SharedGroup& g = node->groups[group];
    if (g.group_.empty()) {
      g.group_ = std::string(group);
      g.filter_ = std::string(filter);
    }
    std::vector<Subscriber>& members = g.members_;
    auto it = std::lower_bound(members.begin(), members.end(), s.session_id,
                               [](const Subscriber& m, uint64_t id) { return m.session_id < id; });
    added = it == members.end() || it->session_id != s.session_id;
    if (added) {
      members.insert(it, s);
    } else {
      *it = s;
    }
  }
  if (added) ++size_;
  return added;
}

std::unique_ptr<SubscriptionTrie::Node>* SubscriptionTrie::ChildSlot(Node& node,
                                                                     std::string_view level) {
  if (level == "+") return &node.plus;
  if (level == "#") return &node.hash;
  auto it = node.children.find(level);
  return it == node.children.end() ? nullptr : &it->second;
}

SubscriptionTrie::Node* SubscriptionTrie::Descend(std::string_view filter,
                                                  std::vector<Step>* path) const {
  Node* node = root_.get();
  bool found = true;
  ForEachLevel(filter, [&](std::string_view level) {
    if (!found) return;
    std::unique_ptr<Node>* slot = ChildSlot(*node, level);
    if (slot == nullptr || !*slot) {
      found = false;
      return;
    }
    if (path != nullptr) path->push_back({node, slot, level});
    node = slot->get();
  });
  return found ? node : nullptr;
}

SubscriptionTrie::SharedGroup* SubscriptionTrie::FindGroup(std::string_view filter,
                                                           std::string_view group) {
  Node* node = Descend(filter, nullptr);
  if (node == nullptr) return nullptr;
  auto g = node->groups.find(group);
  return g == node->groups.end() ? nullptr : &g->second;
}

bool SubscriptionTrie::Remove(std::string_view filter, std::string_view group,
                              uint64_t session_id) {
  std::vector<Step> path;
  Node* node = Descend(filter, &path);
  if (node == nullptr) return false;

  bool removed = false;
  if (group.empty()) {
    removed = node->subscribers.erase(session_id) > 0;
  } else if (auto g = node->groups.find(group); g != node->groups.end()) {
    auto& members = g->second.members_;
    auto it = std::find_if(members.begin(), members.end(),
                           [&](const Subscriber& m) { return m.session_id == session_id; });
    if (it != members.end()) {
      members.erase(it);
      removed = true;
      if (members.empty()) node->groups.erase(g);
    }
  }
  if (!removed) return false;
  --size_;

  // Prune from the leaf up while nodes are empty.
  for (auto step = path.rbegin(); step != path.rend(); ++step) {
    if (!(*step->slot)->empty()) break;
    if (step->level == "+" || step->level == "#") {
      step->slot->reset();
    } else {
      step->parent->children.erase(step->level);
    }
  }
  return true;
}

}  // namespace backend
