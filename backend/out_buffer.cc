// OutBuffer bookkeeping. Consumed bytes at the front of bytes_ are reclaimed when the buffer
// empties, or by compaction once they are the larger part, so a client that never quite catches
// up does not grow the string forever.
#include "backend/out_buffer.h"

namespace backend {

void OutBuffer::CloseBytes() {
  if (bytes_.size() == open_begin_) return;
  if (!segments_.empty() && !segments_.back().hold && segments_.back().end == open_begin_) {
    segments_.back().end = bytes_.size();  // extend the last byte range
  } else {
    segments_.push_back({open_begin_, bytes_.size(), nullptr});
  }
  size_ += bytes_.size() - open_begin_;
  open_begin_ = bytes_.size();
}

void OutBuffer::AppendPayload(const MessagePtr& message) {
  const std::string& payload = message->payload;
  if (payload.size() < kShareFromBytes) {
    bytes_.append(payload);
    return;
  }
  CloseBytes();
  segments_.push_back({0, payload.size(), message});
  size_ += payload.size();
}

size_t OutBuffer::Gather(boost::asio::const_buffer* out) {
  CloseBytes();
  size_t n = 0;
  for (const Segment& s : segments_) {
    if (n == kMaxGather) break;
    const char* base = s.hold ? s.hold->payload.data() : bytes_.data();
    out[n++] = boost::asio::const_buffer(base + s.begin, s.end - s.begin);
  }
  return n;
}

void OutBuffer::Consume(size_t n) {
  size_ -= n;
  while (n > 0) {
    Segment& front = segments_.front();
    size_t len = front.end - front.begin;
    if (n < len) {
      front.begin += n;
      break;
    }
    n -= len;
    segments_.pop_front();
  }
  if (segments_.empty() && open_begin_ == bytes_.size()) {
    bytes_.clear();
    open_begin_ = 0;
  } else {
    Compact();
  }
}

void OutBuffer::Compact() {
  // The first byte of bytes_ still needed.
  size_t live = open_begin_;
  for (const Segment& s : segments_) {
    if (!s.hold) {
      live = s.begin;
      break;
    }
  }
  if (live < 64 * 1024 || live < bytes_.size() / 2) return;
  bytes_.erase(0, live);
  open_begin_ -= live;
  for (Segment& s : segments_) {
    if (!s.hold) {
      s.begin -= live;
      s.end -= live;
    }
  }
}

}  // namespace backend
