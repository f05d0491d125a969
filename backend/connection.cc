// Connection I/O: the read loop, dispatch, writes, keep alive and closing. The protocol handlers
// live in the handle_*.cc files.
#include "backend/connection.h"

#include <spdlog/spdlog.h>

#include <array>
#include <span>

#include "backend/broker.h"
#include "backend/graceful_close.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/error.h"

namespace backend {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Connection::Connection(Shard& shard, tcp::socket socket, ConnectionSeed seed)
    : shard_(shard),
      socket_(std::move(socket)),
      token_(std::move(seed.token)),
      slot_(std::move(seed.slot)),
      keep_alive_timer_(shard.io()),
      connect_(std::move(seed.connect)),
      client_id_assigned_(seed.client_id_assigned),
      rx_(std::move(seed.pending_bytes)),
      version_(connect_.version) {
  boost::system::error_code ec;
  tcp::endpoint peer = seed.client ? *seed.client : socket_.remote_endpoint(ec);
  peer_ = ec ? "?" : peer.address().to_string() + ":" + std::to_string(peer.port());
  socket_.non_blocking(true, ec);
  shard_.Register(this);
  if (!IsLinkClientId(connect_.client_id)) shard_.metrics().connections.Add(1);
}

Connection::~Connection() {
  shard_.Unregister(this);
  if (!IsLinkClientId(connect_.client_id)) shard_.metrics().connections.Add(-1);
}

// ---- Reading ----------------------------------------------------------------------------------

void Connection::WaitReadable() {
  if (reading_ || closed_ || read_paused_ || held_back_) return;
  reading_ = true;
  socket_.async_wait(tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->reading_ = false;
                       self->OnReadable(ec);
                     });
}

void Connection::OnReadable(const boost::system::error_code& wait_ec) {
  if (closed_) return;
  if (wait_ec) return Close(std::nullopt, /*publish_will=*/true);
  ReadOnce();
  WaitReadable();  // unless closed or paused meanwhile
}

bool Connection::ReadOnce() {
  std::string& scratch = shard_.read_scratch();
  boost::system::error_code ec;
  size_t n = socket_.read_some(asio::buffer(scratch), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) return false;
  if (ec) {
    Close(std::nullopt, /*publish_will=*/true);  // EOF or reset: abnormal
    return false;
  }
  shard_.metrics().bytes_received.Add(static_cast<int64_t>(n));
  std::string_view data(scratch.data(), n);
  if (!rx_.empty()) {
    // An incomplete packet is waiting: put what came behind it, so that it ends up contiguous.
    rx_.append(data);
    data = rx_;
  }

  size_t consumed = Process(data, Clock::now());
  if (closed_) return false;
  if (data.data() != rx_.data()) {
    rx_.assign(data.substr(consumed));  // the start of a packet the next read completes
  } else if (consumed == rx_.size()) {
    std::string().swap(rx_);  // complete again: give the buffer back, idle holds none
  } else {
    rx_.erase(0, consumed);
  }
  // Replies go out at the shard's flush, in one write with everything else this pass produced
  // for the client, and after the deliveries the read caused on this shard.
  if (!out_.empty()) shard_.MarkDirty(*this);
  if (out_.size() > shard_.config().limits.max_write_buffer_bytes) {
    read_paused_ = true;  // the client does not read what we send: stop reading it
  }
  return true;
}

void Connection::ReadPending() {
  // Bounded: what a client sent while we did not read it is at most its socket's buffer.
  for (int reads = 0; reads < 16; ++reads) {
    if (!ReadOnce()) return;
  }
}

size_t Connection::Process(std::string_view data, Clock::time_point now) {
  size_t offset = 0;
  // A node link is held to the protocol's bound only: a forward carries the publisher's packet
  // (which this node's limit allowed) and the link's properties on top, and is not the node's to
  // refuse (a refusal would close the link, and the forward would come again, and again).
  uint32_t max_packet =
      is_node_link() ? mqtt::kMaxPacketBytes : shard_.config().limits.max_packet_bytes;
  while (!closed_) {
    absl::StatusOr<std::optional<mqtt::Frame>> frame =
        mqtt::ParseFrame(data.substr(offset), max_packet);
    if (!frame.ok()) {
      ProtocolError(mqtt::ReasonOf(frame.status()), std::string(frame.status().message()));
      break;
    }
    if (!frame->has_value()) break;
    offset += (*frame)->size;
    // Keep alive counts whole packets, not bytes (§3.1.2.10): a client that trickles a packet it
    // never finishes is as silent as one that sends nothing.
    last_packet_at_ = now;
    absl::StatusOr<mqtt::Packet> packet = mqtt::DecodePacket(**frame, version_);
    if (!packet.ok()) {
      mqtt::ReasonCode reason = mqtt::ReasonOf(packet.status());
      // 0x84 is CONNACK's alone (§3.14.2.1): a CONNECT after the first, whatever its protocol
      // level, is a protocol error.
      if (reason == mqtt::ReasonCode::kUnsupportedProtocolVersion) {
        reason = mqtt::ReasonCode::kProtocolError;
      }
      ProtocolError(reason, std::string(packet.status().message()));
      break;
    }
    Dispatch(std::move(*packet));
  }
  return offset;
}

void Connection::Dispatch(mqtt::Packet&& packet) {
  struct Visitor {
    Connection& c;
    void operator()(mqtt::Publish& p) { c.HandlePublish(std::move(p)); }
    void operator()(mqtt::Puback& p) { c.HandlePuback(p); }
    void operator()(mqtt::Pubrec& p) { c.HandlePubrec(p); }
    void operator()(mqtt::Pubrel& p) { c.HandlePubrel(p); }
    void operator()(mqtt::Pubcomp& p) { c.HandlePubcomp(p); }
    void operator()(mqtt::Subscribe& p) { c.HandleSubscribe(std::move(p)); }
    void operator()(mqtt::Unsubscribe& p) { c.HandleUnsubscribe(std::move(p)); }
    void operator()(mqtt::Pingreq&) { c.Send(mqtt::Pingresp{}); }
    void operator()(mqtt::Disconnect& p) { c.HandleDisconnect(p); }
    void operator()(mqtt::Connect&) {
      c.ProtocolError(mqtt::ReasonCode::kProtocolError, "second CONNECT");  // §3.1
    }
    void operator()(mqtt::Auth&) {
      // We announce no authentication method, so there is no exchange to continue (§4.12).
      c.ProtocolError(mqtt::ReasonCode::kProtocolError, "AUTH without authentication method");
    }
    // Packets only a server sends.
    void operator()(mqtt::Connack&) { Unexpected(); }
    void operator()(mqtt::Suback&) { Unexpected(); }
    void operator()(mqtt::Unsuback&) { Unexpected(); }
    void operator()(mqtt::Pingresp&) { Unexpected(); }
    void Unexpected() {
      c.ProtocolError(mqtt::ReasonCode::kProtocolError, "packet a client must not send");
    }
  };
  std::visit(Visitor{*this}, packet);
}

void Connection::HandleDisconnect(const mqtt::Disconnect& d) {
  if (std::optional<uint32_t> expiry = d.properties.session_expiry_interval) {
    // A session that ends at disconnect cannot be given an expiry now (MQTT 5.0 §3.14.2.2.2).
    if (session_expiry_s_ == 0 && *expiry != 0) {
      return ProtocolError(mqtt::ReasonCode::kProtocolError, "session expiry set at DISCONNECT");
    }
    session_expiry_s_ = shard_.broker().CapSessionExpiry(*expiry);
  }
  // Only a normal disconnection (0x00) discards the will; 0x04 asks for it, and so does, in
  // effect, any error reason: the connection did not end normally (§3.1.2.5, §3.14.4).
  Close(std::nullopt, d.reason != mqtt::ReasonCode::kSuccess);
}

// ---- Writing ----------------------------------------------------------------------------------

void Connection::Send(const mqtt::Packet& packet) {
  if (closed_) return;
  mqtt::Encode(packet, version_, out_.bytes());
}

void Connection::Flush() {
  if (closed_ || writing_) return;  // OnWritable continues
  std::array<asio::const_buffer, OutBuffer::kMaxGather> buffers;
  while (!out_.empty()) {
    size_t n = out_.Gather(buffers.data());
    boost::system::error_code ec;
    size_t written = socket_.write_some(std::span(buffers.data(), n), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      writing_ = true;
      socket_.async_wait(tcp::socket::wait_write,
                         [self = shared_from_this()](const boost::system::error_code& ec) {
                           self->writing_ = false;
                           self->OnWritable(ec);
                         });
      return;
    }
    if (ec) return CloseAfterWriteError();
    out_.Consume(written);
    shard_.metrics().bytes_sent.Add(static_cast<int64_t>(written));
  }
}

void Connection::OnWritable(const boost::system::error_code& ec) {
  if (closed_) return;
  if (ec) return CloseAfterWriteError();
  Pump();
  MaybeResumeReading();
}

void Connection::CloseAfterWriteError() {
  // The client may have said goodbye in what we have not read yet: a DISCONNECT there discards
  // its will (§3.14.4), as it would had we read it in time. So for one we stopped reading, and
  // for one whose DISCONNECT and end of stream arrived in the same turn as the write's error
  // (its reset: the bytes before it can still be read).
  ReadPending();
  Close(std::nullopt, /*publish_will=*/true);
}

void Connection::MaybeResumeReading() {
  if (read_paused_ && out_.size() <= shard_.config().limits.max_write_buffer_bytes / 2) {
    read_paused_ = false;
  }
  if (!read_paused_ && !held_back_) WaitReadable();
}

void Connection::PauseFor(Backpressure& congested) {
  // A node or a shard this client's messages go to does not keep up: stop reading the client
  // until it drains, rather than queue without bound.
  if (held_back_) return;
  held_back_ = true;
  shard_.metrics().publishers_held_back.Add();
  congested.WhenDrained([weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->held_back_ = false;
      self->MaybeResumeReading();
    }
  });
}

void Connection::Pump() {
  // A drain stops at the write buffer's limit. If the flush then writes the whole buffer without
  // blocking, no OnWritable will come to pump again, so drain again here: otherwise the rest of
  // the queue would wait for the next unrelated event (a new message, an acknowledgement).
  while (Drain()) {
    Flush();
    if (closed_ || writing_) return;
  }
  Flush();
  // Everything went out without blocking: no OnWritable will come to resume a paused read.
  if (read_paused_ && !writing_ && !closed_) MaybeResumeReading();
}

bool Connection::Drain() {
  if (closed_ || session_ == nullptr) return false;
  size_t limit = shard_.config().limits.max_write_buffer_bytes;
  Clock::time_point now = Clock::now();
  SendHeldResends(now);
  if (!held_resends_.empty()) return false;  // new messages wait behind the resends (§4.6)
  uint64_t expired_before = session_->expired_dropped();
  bool stopped_at_limit = true;
  while (out_.size() < limit) {
    std::optional<Outgoing> next = session_->PopNext(now);
    if (!next) {
      stopped_at_limit = false;
      break;
    }
    SendOutgoing(*next, now);
  }
  // PopNext skips the messages whose expiry interval passed in the queue (§3.3.2.3.3); they are
  // drops like any other, so they are counted.
  if (uint64_t expired = session_->expired_dropped() - expired_before; expired > 0) {
    shard_.metrics().Drop(DropReason::kExpired, static_cast<int64_t>(expired));
  }
  return stopped_at_limit;
}

// ---- Keep alive -------------------------------------------------------------------------------

void Connection::ArmKeepAlive(Clock::time_point deadline) {
  keep_alive_timer_.expires_at(deadline);
  keep_alive_timer_.async_wait(
      [self = shared_from_this()](const boost::system::error_code& ec) { self->OnKeepAlive(ec); });
}

void Connection::OnKeepAlive(const boost::system::error_code& ec) {
  if (ec || closed_) return;
  Clock::time_point deadline = last_packet_at_ + keep_alive_timeout_;
  Clock::time_point now = Clock::now();
  if (now >= deadline && held_back_) {
    // Held back by a congested link or shard: bytes waiting in the socket show the client is
    // alive, and reading them would feed what is congested.
    boost::system::error_code available_ec;
    if (socket_.available(available_ec) > 0 && !available_ec) {
      return ArmKeepAlive(now + keep_alive_timeout_);
    }
  }
  if (now >= deadline && (read_paused_ || held_back_)) {
    // We stopped reading this client, it did not stop writing: what it sent meanwhile (a
    // PINGREQ) counts before it is judged silent.
    ReadPending();
    if (closed_) return;
    deadline = last_packet_at_ + keep_alive_timeout_;
  }
  if (Clock::now() < deadline) return ArmKeepAlive(deadline);
  // Nothing for 1.5 times the keep alive (MQTT 5.0 §3.1.2.10).
  spdlog::info("{} ({}): keep alive timeout", connect_.client_id, peer_);
  Disconnect(mqtt::ReasonCode::kKeepAliveTimeout, /*publish_will=*/true);
}

// ---- Closing ----------------------------------------------------------------------------------

void Connection::ProtocolError(mqtt::ReasonCode reason, std::string_view why) {
  spdlog::info("{} ({}): closing: {} ({})", connect_.client_id, peer_, why,
               mqtt::ReasonName(reason));
  Disconnect(reason, /*publish_will=*/true);
}

void Connection::Disconnect(mqtt::ReasonCode reason, bool publish_will) {
  shard_.metrics().disconnects[static_cast<uint8_t>(reason)].Add();
  Close(reason, publish_will);
}

Connection::HandedOver Connection::HandOver() {
  session_ = nullptr;  // the session stays, for the new connection
  HandedOver handed{.will = std::move(will_), .session_expiry_s = session_expiry_s_};
  Disconnect(mqtt::ReasonCode::kSessionTakenOver, /*publish_will=*/false);
  return handed;
}

void Connection::Close(std::optional<mqtt::ReasonCode> disconnect_reason, bool publish_will) {
  if (closed_) return;
  if (disconnect_reason && version_ == mqtt::Version::k5) {
    Send(mqtt::Disconnect{.reason = *disconnect_reason});
  }
  closed_ = true;
  keep_alive_timer_.cancel();
  if (session_ != nullptr) {
    Session& session = *session_;
    session_ = nullptr;
    shard_.Detach(session, publish_will ? std::move(will_) : std::nullopt, will_delay_s_,
                  session_expiry_s_);
  }
  boost::system::error_code ignored;
  socket_.cancel(ignored);
  CloseGracefully(std::move(socket_), std::move(out_), std::move(token_));
}

}  // namespace backend
