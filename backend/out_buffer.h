// The bytes waiting to be written to one client, as a list of segments for scatter-gather writes.
//
// Small packets (acknowledgements, headers, short payloads) are appended to one byte string. A
// large payload is not copied: its segment points into the shared Message, which the buffer keeps
// alive until the bytes are written. So a 64 KiB message fanned out to 1,000 subscribers exists
// once in memory, under 1,000 small headers.
#pragma once

#include <boost/asio/buffer.hpp>
#include <cstddef>
#include <deque>
#include <string>

#include "backend/message.h"

namespace backend {

class OutBuffer {
 public:
  // Payloads from this size up are referenced rather than copied.
  static constexpr size_t kShareFromBytes = 512;
  static constexpr size_t kMaxGather = 64;

  // Append encoded bytes here directly.
  std::string& bytes() { return bytes_; }
  // Appends `message`'s payload after the bytes appended so far.
  void AppendPayload(const MessagePtr& message);

  // Fills `out` with the buffers to write next, at most kMaxGather; returns how many.
  size_t Gather(boost::asio::const_buffer* out);
  // Drops the first `n` bytes, which were written.
  void Consume(size_t n);
  // Bytes waiting.
  size_t size() const { return size_ + (bytes_.size() - open_begin_); }
  bool empty() const { return size() == 0; }

 private:
  struct Segment {
    size_t begin;
    size_t end;
    MessagePtr hold;  // null: a range of bytes_; else a range of hold->payload
  };
  void CloseBytes();
  void Compact();

  std::string bytes_;
  std::deque<Segment> segments_;
  size_t open_begin_ = 0;  // bytes_ from here on are not in a segment yet
  size_t size_ = 0;        // bytes in segments_
};

}  // namespace backend
