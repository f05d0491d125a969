// RetainedStore: set, delete with pruning, and filter matching.
#include "backend/retained_store.h"

#include <vector>

#include "absl/container/flat_hash_map.h"

namespace backend {

RetainedStore::RetainedStore() : root_(std::make_unique<Node>()) {}
RetainedStore::~RetainedStore() = default;

void RetainedStore::Set(MessagePtr message) {
  if (message->payload.empty()) {
    Erase(message->topic, nullptr);
    return;
  }
  std::string_view topic = message->topic;
  Node* node = root_.get();
  while (true) {
    size_t slash = topic.find('/');
    std::string_view level = topic.substr(0, slash);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    node = it->second.get();
    if (slash == std::string_view::npos) break;
    topic.remove_prefix(slash + 1);
  }
  Put(*node, std::move(message));
}

void RetainedStore::Put(Node& node, MessagePtr message) {
  if (node.message) Drop(node);
  if (message->expires_at) expiries_.emplace(*message->expires_at, message.get());
  node.message = std::move(message);
  ++size_;
}

MessagePtr RetainedStore::Drop(Node& node) {
  if (node.message->expires_at) expiries_.erase({*node.message->expires_at, node.message.get()});
  --size_;
  return std::move(node.message);
}

MessagePtr RetainedStore::Erase(std::string_view topic, const Message* only) {
  std::vector<std::pair<Node*, std::string_view>> path;  // parent and child level
  Node* node = root_.get();
  while (true) {
    size_t slash = topic.find('/');
    std::string_view level = topic.substr(0, slash);
    auto it = node->children.find(level);
    if (it == node->children.end()) return nullptr;  // nothing retained under this topic
    path.emplace_back(node, level);
    node = it->second.get();
    if (slash == std::string_view::npos) break;
    topic.remove_prefix(slash + 1);
  }
  if (!node->message || (only != nullptr && node->message.get() != only)) return nullptr;
  // Kept until the end: `topic` may be its own.
  MessagePtr gone = Drop(*node);
  for (auto step = path.rbegin(); step != path.rend(); ++step) {
    auto child = step->first->children.find(step->second);
    if (child->second->message || !child->second->children.empty()) break;
    step->first->children.erase(child);
  }
  return gone;
}

void RetainedStore::RemoveExpired(Clock::time_point now,
                                  const std::function<void(const MessagePtr&)>& removed) {
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    const Message* m = expiries_.begin()->second;  // stored, as everything in expiries_ is
    removed(Erase(m->topic, m));
  }
}

bool RetainedStore::Live(Node& node, Clock::time_point now) {
  if (node.message && node.message->expired(now)) Drop(node);
  return node.message != nullptr;
}

bool RetainedStore::VisitSubtree(Node& node, Clock::time_point now,
                                 const std::function<void(const MessagePtr&)>& visit) {
  if (Live(node, now)) visit(node.message);
  absl::erase_if(node.children,
                 [&](const auto& child) { return VisitSubtree(*child.second, now, visit); });
  return Empty(node);
}

bool RetainedStore::MatchLevels(Node& node, std::string_view rest, bool done, bool first,
                                Clock::time_point now,
                                const std::function<void(const MessagePtr&)>& visit) {
  if (done) {
    if (Live(node, now)) visit(node.message);
    return Empty(node);
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
    if (!first && Live(node, now)) visit(node.message);
    absl::erase_if(node.children, [&](const auto& child) {
      return !skips(child.first) && VisitSubtree(*child.second, now, visit);
    });
  } else if (level == "+") {
    absl::erase_if(node.children, [&](const auto& child) {
      return !skips(child.first) && MatchLevels(*child.second, next, last, false, now, visit);
    });
  } else if (auto it = node.children.find(level); it != node.children.end()) {
    if (MatchLevels(*it->second, next, last, false, now, visit)) node.children.erase(it);
  }
  return Empty(node);
}

void RetainedStore::Match(std::string_view filter, Clock::time_point now,
                          const std::function<void(const MessagePtr&)>& visit) {
  MatchLevels(*root_, filter, false, true, now, visit);  // the root stays, empty or not
}

}  // namespace backend
