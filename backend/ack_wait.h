// Holds back a publisher's acknowledgement until every node that must receive its message has
// taken it (MQTT QoS 1 and 2 end to end across the cluster).
//
// The shard routing the message calls Expect() once per node it forwards to, the node links call
// Taken() when the node acknowledges (or when the node is gone: a dead node must not hold its
// publishers forever), and the connection calls Seal() when routing is done; `done` runs once,
// when the wait is sealed and nothing is outstanding. Single-threaded: everything happens on the
// publishing shard's thread.
#pragma once

#include <functional>
#include <memory>

namespace backend {

class AckWait {
 public:
  explicit AckWait(std::function<void()> done) : done_(std::move(done)) {}

  void Expect() { ++outstanding_; }
  void Taken() {
    --outstanding_;
    Check();
  }
  void Seal() {
    sealed_ = true;
    Check();
  }

 private:
  void Check() {
    if (sealed_ && outstanding_ == 0 && done_) std::exchange(done_, nullptr)();
  }

  std::function<void()> done_;
  int outstanding_ = 0;
  bool sealed_ = false;
};

}  // namespace backend
