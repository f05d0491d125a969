// A shard's connection to another node of the cluster, over which it forwards the messages that
// node's subscribers need.
//
// The link is an MQTT 5 client connection to the peer's ordinary listener, with client id
// "$node/SELF/SHARD" and the user property sb.link.node = SELF, which the peer recognises: what
// arrives on it is routed to the peer's own sessions only (never forwarded again). Forwards of
// QoS 1 and 2 messages go at QoS 1, and the peer's PUBACK means it has taken the message (it is
// in its sessions' queues): only then does the publisher's acknowledgement go out (AckWait).
//
// Writes are batched (everything queued while a write is out goes in the next one) and bounded:
// past `queue_bytes` waiting, the link is congested and the publishers feeding it stop being
// read until it drains (backpressure rather than memory). Encoded bytes the peer has not read
// are bounded by `queue_bytes` too; what is not encoded yet stays in the queue, counted. When the
// connection fails, what was in flight is queued again and the link reconnects with a backoff; a
// redelivered forward may then arrive twice (at least once across the cluster). When the peer
// leaves the cluster, Stop() releases every waiting publisher.
//
// One link per shard and peer keeps each publisher's messages in order on their way to a node.
#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "backend/ack_wait.h"
#include "backend/backpressure.h"
#include "backend/forward.h"
#include "backend/message.h"
#include "backend/out_buffer.h"

namespace backend {

class Shard;

// Links connect with client ids under this prefix.
inline constexpr std::string_view kLinkClientIdPrefix = "$node/";
inline bool IsLinkClientId(std::string_view client_id) {
  return client_id.starts_with(kLinkClientIdPrefix);
}

class NodeLink final : public Backpressure, public std::enable_shared_from_this<NodeLink> {
 public:
  NodeLink(Shard& shard, std::string self, std::string peer, boost::asio::ip::tcp::endpoint address,
           size_t queue_bytes);

  void Start();
  // The peer left the cluster: releases everything waiting on it and closes for good.
  void Stop();

  // Queues `message` for the peer with `spec`; it is written at the shard's next flush, with
  // everything else the current handler forwarded. `wait`, for QoS 1 and 2, is released when
  // the peer has taken it.
  void Forward(const MessagePtr& message, ForwardSpec spec, std::shared_ptr<AckWait> wait);
  // Encodes what the window lets out and writes it (the shard's flush).
  void Pump();
  bool dirty = false;  // queued for the shard's flush

  bool connected() const { return state_ == State::kConnected; }
  // Nothing waiting, unwritten or unacknowledged.
  bool idle() const { return queue_.empty() && inflight_.empty() && out_.empty() && !writing_; }
  bool congested() const { return queued_bytes_ > queue_bytes_; }
  void WhenDrained(std::function<void()> f) override;
  const boost::asio::ip::tcp::endpoint& address() const { return address_; }

 private:
  enum class State { kConnecting, kConnected, kBackoff, kStopped };
  struct Entry {
    MessagePtr message;
    ForwardSpec spec;
    std::shared_ptr<AckWait> wait;  // null for QoS 0
    uint64_t seq = 0;
  };

  void Connect();
  void OnConnected();
  void Fail(std::string_view why);
  void Read();
  void OnPacket(const mqtt::Packet& packet);
  // Writes at once while the socket takes it; waits for writability only when it is full.
  void Write();
  void ArmPing();
  void CheckDrained();
  size_t Cost(const Entry& e) const {
    return e.message->payload.size() + e.message->topic.size() + 64;
  }
  // An entry done with (acknowledged, sent at QoS 0, or dropped): its bytes leave the queue's
  // count and its publisher may be answered.
  void Release(Entry& e) {
    queued_bytes_ -= Cost(e);
    if (e.wait) e.wait->Taken();
  }

  Shard& shard_;
  std::string self_, peer_;
  boost::asio::ip::tcp::endpoint address_;
  size_t queue_bytes_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;  // backoff or keep alive
  State state_ = State::kConnecting;
  std::chrono::milliseconds backoff_{100};
  std::deque<Entry> queue_;                        // waiting to be written
  absl::flat_hash_map<uint16_t, Entry> inflight_;  // written, waiting for PUBACK
  uint16_t last_packet_id_ = 0;
  uint64_t next_seq_ = 0;
  size_t queued_bytes_ = 0;
  std::vector<std::function<void()>> drained_;
  OutBuffer out_;
  std::array<boost::asio::const_buffer, OutBuffer::kMaxGather> gather_;
  bool writing_ = false;
  std::string rx_;
  std::array<char, 16 * 1024> read_buffer_;
};

}  // namespace backend
