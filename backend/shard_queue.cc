#include "backend/shard_queue.h"

#include <boost/asio/post.hpp>

#include "backend/shard.h"

namespace backend {

namespace {

// What a delivery holds in memory until the target takes it: the message's bytes (shared with
// its other deliveries, but a fan-out to many sessions of one shard is as much work for that
// shard as many messages) and the entry itself.
size_t Cost(const Delivery& d) {
  return d.message->topic.size() + d.message->payload.size() +
         sizeof(std::pair<uint64_t, Delivery>);
}

}  // namespace

ShardQueue::ShardQueue(Shard& source, Shard& target, size_t bound)
    : source_(source), target_(target), bound_(bound) {}

void ShardQueue::Push(uint64_t session_id, Delivery d) {
  pending_bytes_ += Cost(d);
  batch_.deliveries.emplace_back(session_id, std::move(d));
}

void ShardQueue::Push(ShardBatch::Targeted t) {
  pending_bytes_ += Cost(t.delivery) + t.client_id.size();
  batch_.targeted.push_back(std::move(t));
}

void ShardQueue::Flush() {
  if (batch_.empty()) return;
  size_t bytes = std::exchange(pending_bytes_, 0);
  in_transit_.fetch_add(bytes);
  boost::asio::post(target_.io(), [this, bytes, batch = std::exchange(batch_, {})]() mutable {
    target_.ReceiveDeliveries(std::move(batch));
    Taken(bytes);
  });
}

bool ShardQueue::drained() const {
  return pending_bytes_ + in_transit_.load() <= bound_ / 2;
}

void ShardQueue::WhenDrained(std::function<void()> f) {
  drained_.push_back(std::move(f));
  // Set before the count is read, as Taken() lowers the count before it reads the flag: one of
  // the two sees the other's write, so a publisher is never left waiting (both may; RunDrained
  // then finds nothing the second time).
  waiting_.store(true);
  if (drained()) boost::asio::post(source_.io(), [this] { RunDrained(); });
}

void ShardQueue::Taken(size_t bytes) {
  size_t left = in_transit_.fetch_sub(bytes) - bytes;
  if (left <= bound_ / 2 && waiting_.exchange(false)) {
    boost::asio::post(source_.io(), [this] { RunDrained(); });
  }
}

void ShardQueue::RunDrained() {
  // Publishers may have filled it again since this was posted: then the next Taken() that
  // brings it to half runs them.
  waiting_.store(true);
  if (!drained()) return;
  waiting_.store(false);
  for (auto& f : std::exchange(drained_, {}))
    f();
}

}  // namespace backend
