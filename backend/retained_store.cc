// RetainedStore: set, delete with pruning, and filter matching.
#include "backend/retained_store.h"

#include <vector>

namespace backend {

RetainedStore::RetainedStore() : root_(std::make_unique<Node>()) {}
RetainedStore::~RetainedStore() = default;

void RetainedStore::Set(MessagePtr message) {
  std::string_view topic = message->topic;
  bool erase = message->payload.empty();
  std::vector<std::pair<Node*, std::string_view>> path;  // parent and child level
  Node* node = root_.get();
  while (true) {
    size_t slash = topic.find('/');
    std::string_view level = topic.substr(0, slash);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      if (erase) return;  // nothing retained under this topic
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    path.emplace_back(node, level);
    node = it->second.get();
    if (slash == std::string_view::npos) break;
    topic.remove_prefix(slash + 1);
  }
  if (!erase) {
    if (!node->message) ++size_;
    node->message = std::move(message);
    return;
  }
  if (!node->message) return;
  node->message.reset();
  --size_;
  for (auto step = path.rbegin(); step != path.rend(); ++step) {
    auto child = step->first->children.find(step->second);
    if (child->second->message || !child->second->children.empty()) break;
    step->first->children.erase(child);
  }
}

void RetainedStore::VisitSubtree(const Node& node, Clock::time_point now,
                                 const std::function<void(const MessagePtr&)>& visit) {
  if (node.message && !node.message->expired(now)) visit(node.message);
  for (const auto& [level, child] : node.children)
    VisitSubtree(*child, now, visit);
}

void RetainedStore::MatchLevels(const Node& node, std::string_view rest, bool done, bool first,
                                Clock::time_point now,
                                const std::function<void(const MessagePtr&)>& visit) {
  if (done) {
    if (node.message && !node.message->expired(now)) visit(node.message);
    return;
  }
  size_t slash = rest.find('/');
  std::string_view level = rest.substr(0, slash);
  bool last = slash == std::string_view::npos;
  std::string_view next = last ? std::string_view() : rest.substr(slash + 1);
  auto skips = [first](std::string_view child) {
    return first && !child.empty() && child[0] == '$';
  };
  if (level == "#") {
    // The parent level itself ("a/#" matches "a"), then everything below.
    if (!first && node.message && !node.message->expired(now)) visit(node.message);
    for (const auto& [name, child] : node.children) {
      if (!skips(name)) VisitSubtree(*child, now, visit);
    }
  } else if (level == "+") {
    for (const auto& [name, child] : node.children) {
      if (!skips(name)) MatchLevels(*child, next, last, false, now, visit);
    }
  } else if (auto it = node.children.find(level); it != node.children.end()) {
    MatchLevels(*it->second, next, last, false, now, visit);
  }
}

void RetainedStore::Match(std::string_view filter, Clock::time_point now,
                          const std::function<void(const MessagePtr&)>& visit) const {
  MatchLevels(*root_, filter, false, true, now, visit);
}

}  // namespace backend
