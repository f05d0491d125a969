// Client: connect, read loop, the acknowledgement flows, batched writes.
#include "bench/loadgen/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

#include "mqtt/encoder.h"

namespace loadgen {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Client::Client(asio::io_context& io, tcp::endpoint target, ClientOptions options,
               ClientEvents events)
    : socket_(io),
      target_(target),
      keep_alive_timer_(io),
      options_(std::move(options)),
      events_(std::move(events)),
      read_buffer_(2048) {}

void Client::Connect() {
  socket_.async_connect(target_, [self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec) return self->Fail("connect: " + ec.message());
    boost::system::error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    mqtt::Connect c{.version = self->options_.version,
                    .clean_start = self->options_.clean_start,
                    .keep_alive_s = self->options_.keep_alive_s,
                    .client_id = self->options_.client_id};
    if (self->options_.version == mqtt::Version::k5 && self->options_.session_expiry_s > 0) {
      c.properties.session_expiry_interval = self->options_.session_expiry_s;
    }
    self->connect_sent_at_ = Clock::now();
    self->Send(c);
    self->Read();
  });
}

void Client::Subscribe(const std::string& filter, mqtt::QoS qos) {
  mqtt::Subscribe s{.packet_id = NextPacketId()};
  s.topics.push_back({filter, {.qos = qos}});
  Send(s);
}

bool Client::Publish(const std::string& topic, std::string_view payload, mqtt::QoS qos) {
  if (closed_) return false;
  uint16_t packet_id = 0;
  if (qos != mqtt::QoS::k0) {
    if (inflight_ >= receive_maximum_) return false;
    ++inflight_;
    packet_id = NextPacketId();
  }
  mqtt::EncodePublishHeader({.topic = topic, .qos = qos, .packet_id = packet_id}, payload.size(),
                            options_.version, pending_);
  pending_.append(payload);
  Flush();
  return true;
}

void Client::Disconnect() {
  Send(mqtt::Disconnect{});
  connected_ = false;
  close_after_write_ = true;
}

void Client::Close() {
  closed_ = true;
  connected_ = false;
  keep_alive_timer_.cancel();
  boost::system::error_code ignored;
  socket_.close(ignored);
}

uint16_t Client::NextPacketId() {
  last_packet_id_ = last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1;
  return last_packet_id_;
}

void Client::Send(const mqtt::Packet& packet) {
  if (closed_) return;
  mqtt::Encode(packet, options_.version, pending_);
  Flush();
}

void Client::Flush() {
  if (write_in_flight_ || pending_.empty() || closed_) return;
  write_in_flight_ = true;
  writing_.swap(pending_);
  last_sent_at_ = Clock::now();
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                      self->write_in_flight_ = false;
                      self->writing_.clear();
                      if (ec) return self->Fail("write: " + ec.message());
                      if (self->close_after_write_ && self->pending_.empty()) return self->Close();
                      self->Flush();
                    });
}

void Client::Read() {
  socket_.async_read_some(
      asio::buffer(read_buffer_),
      [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        if (ec) return self->Fail(ec == asio::error::eof ? "closed by the server" : ec.message());
        self->decoder_.Feed(std::string_view(self->read_buffer_.data(), n));
        // Idle clients keep a small buffer; busy ones grow it to read more per call.
        if (n == self->read_buffer_.size() && n < 64 * 1024) self->read_buffer_.resize(n * 2);
        while (!self->closed_) {
          absl::StatusOr<std::optional<mqtt::Packet>> p =
              self->decoder_.Next(self->options_.version);
          if (!p.ok()) return self->Fail("bad packet: " + p.status().ToString());
          if (!p->has_value()) break;
          self->OnPacket(std::move(**p));
        }
        if (!self->closed_) self->Read();
      });
}

void Client::OnPacket(mqtt::Packet&& packet) {
  switch (mqtt::TypeOf(packet)) {
    case mqtt::PacketType::kConnack: {
      auto& ack = std::get<mqtt::Connack>(packet);
      connack_at_ = Clock::now();
      if (ack.reason != mqtt::ReasonCode::kSuccess) {
        return Fail("CONNACK refused: " + std::string(mqtt::ReasonName(ack.reason)));
      }
      receive_maximum_ = ack.properties.receive_maximum.value_or(65535);
      connected_ = true;
      ArmKeepAlive();
      if (events_.connected) events_.connected(*this);
      return;
    }
    case mqtt::PacketType::kSuback:
      if (events_.subscribed) events_.subscribed(*this);
      return;
    case mqtt::PacketType::kPublish: {
      auto& p = std::get<mqtt::Publish>(packet);
      if (p.qos == mqtt::QoS::k1) Send(mqtt::Puback{.packet_id = p.packet_id});
      if (p.qos == mqtt::QoS::k2) Send(mqtt::Pubrec{.packet_id = p.packet_id});
      if (events_.message) events_.message(*this, p);
      return;
    }
    case mqtt::PacketType::kPubrel:
      Send(mqtt::Pubcomp{.packet_id = std::get<mqtt::Pubrel>(packet).packet_id});
      return;
    case mqtt::PacketType::kPubrec:
      Send(mqtt::Pubrel{.packet_id = std::get<mqtt::Pubrec>(packet).packet_id});
      return;
    case mqtt::PacketType::kPuback:
    case mqtt::PacketType::kPubcomp:
      if (inflight_ > 0) --inflight_;
      if (events_.published) events_.published(*this);
      return;
    case mqtt::PacketType::kDisconnect:
      return Fail("DISCONNECT from the server: " +
                  std::string(mqtt::ReasonName(std::get<mqtt::Disconnect>(packet).reason)));
    default:
      return;  // PINGRESP, UNSUBACK
  }
}

void Client::ArmKeepAlive() {
  if (options_.keep_alive_s == 0) return;
  // Ping when nothing was sent for half the keep alive.
  auto half = std::chrono::milliseconds(options_.keep_alive_s * 500);
  keep_alive_timer_.expires_at(last_sent_at_ + half);
  keep_alive_timer_.async_wait(
      [self = shared_from_this(), half](const boost::system::error_code& ec) {
        if (ec || self->closed_) return;
        if (Clock::now() - self->last_sent_at_ >= half) self->Send(mqtt::Pingreq{});
        self->ArmKeepAlive();
      });
}

void Client::Fail(const std::string& why) {
  if (closed_) return;
  Close();
  if (events_.closed) events_.closed(*this, why);
}

}  // namespace loadgen
