// Something publishers feed that can fall behind them: a link to another node (node_link.h), the
// deliveries waiting for another shard's thread (shard_queue.h). Past its bound it is congested:
// the publisher that fed it last stops being read (Connection::PauseFor) until it has drained to
// half the bound, so that a slow consumer costs the publishers time rather than the broker memory.
#pragma once

#include <functional>

namespace backend {

class Backpressure {
 public:
  // Runs `f` once, on the calling shard's thread, when no longer congested (at half the bound).
  virtual void WhenDrained(std::function<void()> f) = 0;

 protected:
  ~Backpressure() = default;
};

}  // namespace backend
