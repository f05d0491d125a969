// NodeLink: connect, CONNECT/CONNACK, forward, PUBACK, reconnect.
#include "backend/node_link.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>

#include "backend/broker.h"
#include "backend/cluster.h"
#include "backend/shard.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace backend {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr uint16_t kWindow = 1024;  // forwards in flight on one link
constexpr auto kPingEvery = std::chrono::seconds(10);
}  // namespace

NodeLink::NodeLink(Shard& shard, std::string self, std::string peer, tcp::endpoint address,
                   size_t queue_bytes)
    : shard_(shard),
      self_(std::move(self)),
      peer_(std::move(peer)),
      address_(address),
      queue_bytes_(queue_bytes),
      socket_(shard.io()),
      timer_(shard.io()) {}

void NodeLink::Start() {
  Connect();
}

void NodeLink::Connect() {
  if (state_ == State::kStopped) return;
  state_ = State::kConnecting;
  socket_ = tcp::socket(shard_.io());
  socket_.async_connect(address_, [self = shared_from_this()](const boost::system::error_code& ec) {
    if (self->state_ == State::kStopped) return;
    if (ec) return self->Fail("connect: " + ec.message());
    boost::system::error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    self->socket_.non_blocking(true, ignored);
    mqtt::Connect c{.version = mqtt::Version::k5,
                    .clean_start = true,
                    .keep_alive_s = 30,
                    .client_id = std::string(kLinkClientIdPrefix) + self->self_ + "/" +
                                 std::to_string(self->shard_.index()),
                    .password = self->shard_.broker().cluster()->secret()};
    c.properties.receive_maximum = 65535;
    c.properties.user_properties.emplace_back("sb.link.node", self->self_);
    mqtt::Encode(c, mqtt::Version::k5, self->out_.bytes());
    self->Write();
    self->Read();
  });
}

void NodeLink::OnConnected() {
  state_ = State::kConnected;
  shard_.metrics().links_up.Add(1);
  backoff_ = std::chrono::milliseconds(100);
  spdlog::info("cluster: link to {} up", peer_);
  ArmPing();
  Pump();
}

void NodeLink::Fail(std::string_view why) {
  if (state_ == State::kStopped) return;
  if (state_ == State::kConnected) {
    spdlog::warn("cluster: link to {} lost: {}", peer_, why);
    shard_.metrics().links_up.Add(-1);
  }
  state_ = State::kBackoff;
  boost::system::error_code ignored;
  socket_.close(ignored);
  out_ = OutBuffer();
  rx_.clear();
  // What was in flight goes out again first, in its order.
  std::vector<Entry> again;
  for (auto& [id, e] : inflight_)
    again.push_back(std::move(e));
  inflight_.clear();
  std::sort(again.begin(), again.end(),
            [](const Entry& a, const Entry& b) { return a.seq < b.seq; });
  for (auto it = again.rbegin(); it != again.rend(); ++it)
    queue_.push_front(std::move(*it));
  timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->Connect();
  });
}

void NodeLink::Stop() {
  if (state_ == State::kConnected) shard_.metrics().links_up.Add(-1);
  state_ = State::kStopped;
  timer_.cancel();
  boost::system::error_code ignored;
  socket_.close(ignored);
  // A node that left cannot take anything: its publishers must not wait for it.
  for (auto& e : queue_) {
    if (e.wait) e.wait->Taken();
  }
  for (auto& [id, e] : inflight_) {
    if (e.wait) e.wait->Taken();
  }
  queue_.clear();
  inflight_.clear();
  queued_bytes_ = 0;
  for (auto& f : std::exchange(drained_, {}))
    f();
}

void NodeLink::Forward(const MessagePtr& message, ForwardSpec spec, std::shared_ptr<AckWait> wait) {
  if (state_ == State::kStopped) {
    if (wait) wait->Taken();
    return;
  }
  Entry e{message, std::move(spec), std::move(wait), next_seq_++};
  queued_bytes_ += Cost(e);
  queue_.push_back(std::move(e));
  shard_.MarkDirty(*this);
}

void NodeLink::WhenDrained(std::function<void()> f) {
  drained_.push_back(std::move(f));
}

void NodeLink::Pump() {
  if (state_ != State::kConnected) return;
  Clock::time_point now = Clock::now();
  // Encoded bytes wait in out_ while the peer does not read; past the bound, entries stay queued
  // (and counted), so that QoS 0 forwards, which need no window, congest the link too.
  while (!queue_.empty() && inflight_.size() < kWindow && out_.size() < queue_bytes_) {
    Entry e = std::move(queue_.front());
    queue_.pop_front();
    const Message& m = *e.message;
    if (m.expired(now) && !e.spec.store_retained) {
      // Its expiry passed while it waited for the link (§3.3.2.3.3): the peer would have given
      // it a second more. Dropped, as a session drops it; the publisher need not wait for it.
      // Not one the peer is to store as retained: it replaces (or deletes) the peer's retained
      // message of the topic, which would otherwise stay.
      Release(e);
      shard_.metrics().Drop(DropReason::kExpired);
      continue;
    }
    bool acked = m.qos != mqtt::QoS::k0;
    uint16_t packet_id = 0;
    if (acked) {
      do {
        last_packet_id_ = last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1;
      } while (inflight_.contains(last_packet_id_));
      packet_id = last_packet_id_;
    }
    auto extra = EncodeForward(e.spec, m.qos, m.retain);
    mqtt::PublishHeader h{.topic = m.topic,
                          .qos = acked ? mqtt::QoS::k1 : mqtt::QoS::k0,
                          .packet_id = packet_id,
                          .properties = m.properties.get(),
                          .extra_user_properties = extra};
    if (m.expires_at) {
      auto left = std::chrono::ceil<std::chrono::seconds>(*m.expires_at - now).count();
      h.message_expiry_interval = static_cast<uint32_t>(std::max<int64_t>(left, 1));
    }
    mqtt::EncodePublishHeader(h, m.payload.size(), mqtt::Version::k5, out_.bytes());
    out_.AppendPayload(e.message);
    if (acked) {
      inflight_.emplace(packet_id, std::move(e));
    } else {
      Release(e);
    }
  }
  CheckDrained();
  Write();
}

void NodeLink::CheckDrained() {
  if (queued_bytes_ <= queue_bytes_ / 2) {
    for (auto& f : std::exchange(drained_, {}))
      f();
  }
}

void NodeLink::Write() {
  if (writing_ || !socket_.is_open()) return;
  while (!out_.empty()) {
    size_t n = out_.Gather(gather_.data());
    boost::system::error_code ec;
    size_t written = socket_.write_some(std::span(gather_.data(), n), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      writing_ = true;
      socket_.async_wait(tcp::socket::wait_write,
                         [self = shared_from_this()](const boost::system::error_code& ec) {
                           self->writing_ = false;
                           if (self->state_ == State::kStopped) return;
                           if (ec) return self->Fail("write: " + ec.message());
                           self->Write();
                           // Room in out_: what waits in the queue goes at the shard's flush.
                           if (!self->queue_.empty()) self->shard_.MarkDirty(*self);
                         });
      return;
    }
    if (ec) return Fail("write: " + ec.message());
    out_.Consume(written);
  }
  // All written at once: Pump stopped encoding at the bound of out_, and no write completion
  // will come to ask for more. Without this, what waits in the queue (and the publishers held
  // back until it drains) would wait for the next forward, which they are the ones to send.
  if (!queue_.empty()) shard_.MarkDirty(*this);
}

void NodeLink::Read() {
  socket_.async_read_some(
      asio::buffer(read_buffer_),
      [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        if (self->state_ == State::kStopped) return;
        if (ec) return self->Fail(ec == asio::error::eof ? "closed by the peer" : ec.message());
        self->rx_.append(self->read_buffer_.data(), n);
        size_t offset = 0;
        while (true) {
          auto frame =
              mqtt::ParseFrame(std::string_view(self->rx_).substr(offset), mqtt::kMaxPacketBytes);
          if (!frame.ok()) return self->Fail("malformed packet from the peer");
          if (!frame->has_value()) break;
          offset += (*frame)->size;
          auto packet = mqtt::DecodePacket(**frame, mqtt::Version::k5);
          if (!packet.ok()) return self->Fail("malformed packet from the peer");
          self->OnPacket(*packet);
          if (self->state_ != State::kConnected && self->state_ != State::kConnecting) return;
        }
        self->rx_.erase(0, offset);
        self->Read();
      });
}

void NodeLink::OnPacket(const mqtt::Packet& packet) {
  if (auto* ack = std::get_if<mqtt::Connack>(&packet)) {
    if (ack->reason != mqtt::ReasonCode::kSuccess) {
      return Fail(std::string("refused: ") + std::string(mqtt::ReasonName(ack->reason)));
    }
    return OnConnected();
  }
  if (auto* ack = std::get_if<mqtt::Puback>(&packet)) {
    auto it = inflight_.find(ack->packet_id);
    if (it == inflight_.end()) return;
    Release(it->second);
    inflight_.erase(it);
    return shard_.MarkDirty(*this);  // the window has room: forward more at the shard's flush
  }
  if (std::holds_alternative<mqtt::Disconnect>(packet)) return Fail("DISCONNECT from the peer");
}

void NodeLink::ArmPing() {
  timer_.expires_after(kPingEvery);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::kConnected) return;
    mqtt::Encode(mqtt::Pingreq{}, mqtt::Version::k5, self->out_.bytes());
    self->Write();
    self->ArmPing();
  });
}

}  // namespace backend
