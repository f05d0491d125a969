// The deliveries one shard hands to another shard's thread (a session there matched a message
// published here, or another node sent one to a session that moved to this node): collected while
// a handler runs and posted as one batch at the shard's flush.
//
// Bounded: the bytes of the messages posted and not yet taken by the target, with those still
// collected, count against `bound`. Past it the queue is congested (Backpressure), so that a
// shard whose thread falls behind the others holds back the publishers feeding it rather than
// letting their messages pile up in its io_context without limit.
//
// Threads: everything but Taken() runs on the source shard's thread; Taken() runs on the target's
// after it has delivered a batch. Only the count in transit and a flag cross between them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backend/backpressure.h"
#include "backend/session.h"

namespace backend {

class Shard;

// What one flush hands to a shard.
struct ShardBatch {
  // To sessions by id.
  std::vector<std::pair<uint64_t, Delivery>> deliveries;
  // From node `from` to the session of a client id that moved here (Shard::DeliverTo).
  struct Targeted {
    std::string client_id;
    Delivery delivery;
    uint32_t from = 0;
  };
  std::vector<Targeted> targeted;

  bool empty() const { return deliveries.empty() && targeted.empty(); }
};

// The bound of each queue. A shard keeps one per other shard, so up to threads × (threads - 1)
// of these may be in memory at once, only while threads fall behind.
inline constexpr size_t kShardQueueBytes = 4 << 20;

class ShardQueue final : public Backpressure {
 public:
  ShardQueue(Shard& source, Shard& target, size_t bound);

  // Source thread.
  void Push(uint64_t session_id, Delivery d);
  void Push(ShardBatch::Targeted t);
  // Posts what was pushed since the last flush to the target, as one batch.
  void Flush();
  bool congested() const {
    return pending_bytes_ + in_transit_.load(std::memory_order_relaxed) > bound_;
  }
  void WhenDrained(std::function<void()> f) override;
  // Posted and not yet taken; from any thread.
  size_t in_transit() const { return in_transit_.load(std::memory_order_relaxed); }

 private:
  // Target thread: a batch of `bytes` has been delivered.
  void Taken(size_t bytes);
  // Source thread: runs the waiting publishers.
  void RunDrained();
  bool drained() const;

  Shard& source_;
  Shard& target_;
  const size_t bound_;
  ShardBatch batch_;
  size_t pending_bytes_ = 0;  // of batch_
  std::atomic<size_t> in_transit_{0};
  // Publishers wait in drained_ for Taken() to post RunDrained(); cleared by the post.
  std::atomic<bool> waiting_{false};
  std::vector<std::function<void()>> drained_;
};

}  // namespace backend
