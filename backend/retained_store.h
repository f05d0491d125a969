// Retained messages by topic (MQTT 5.0 §3.3.1.3): the last retained message of each topic, found
// again by the filters of new subscriptions.
//
// A trie of topic levels, like the subscription trie but the other way round: the stored keys
// are topic names and the query is a filter. A literal filter level follows one child, '+' every
// child, '#' the whole subtree; first-level wildcards skip '$' topics (§4.7.2). A message with an
// empty payload deletes the topic's retained message (§3.3.1.3). Not thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/message.h"
#include "backend/subscription_trie.h"

namespace backend {

class RetainedStore {
 public:
  RetainedStore();
  ~RetainedStore();

  // Stores `message` as its topic's retained message, or deletes that if the payload is empty.
  void Set(MessagePtr message);
  // Calls `visit` for each unexpired retained message whose topic matches `filter`, and removes
  // the expired ones it comes across, as mosquitto does: a message with an expiry stays in memory
  // until its topic is set again or a subscription's filter reaches it.
  void Match(std::string_view filter, Clock::time_point now,
             const std::function<void(const MessagePtr&)>& visit);
  // Removes the messages that have expired by `now` wherever they are, those no filter reaches
  // too, and calls `removed` with each. Costs O(log n) per message with an expiry, nothing for
  // the others.
  void RemoveExpired(Clock::time_point now, const std::function<void(const MessagePtr&)>& removed);
  size_t size() const { return size_; }

 private:
  struct Node {
    StringMap<std::unique_ptr<Node>> children;
    MessagePtr message;
  };
  // Removes the message of `topic`, if it is `only` (any, if null), and the levels it leaves
  // empty. Returns the message removed, if any.
  MessagePtr Erase(std::string_view topic, const Message* only);
  // Every change of a node's message goes through these two, which keep size_ and expiries_.
  void Put(Node& node, MessagePtr message);
  MessagePtr Drop(Node& node);
  // Both return true when they leave `node` with no message and no children, for the caller to
  // erase it.
  bool MatchLevels(Node& node, std::string_view rest, bool done, bool first, Clock::time_point now,
                   const std::function<void(const MessagePtr&)>& visit);
  bool VisitSubtree(Node& node, Clock::time_point now,
                    const std::function<void(const MessagePtr&)>& visit);
  // Drops the message of `node` if it has expired; true if a live one is left.
  bool Live(Node& node, Clock::time_point now);
  static bool Empty(const Node& node) { return !node.message && node.children.empty(); }

  std::unique_ptr<Node> root_;
  size_t size_ = 0;
  // The stored messages that have an expiry, soonest first.
  std::set<std::pair<Clock::time_point, const Message*>> expiries_;
};

}  // namespace backend
