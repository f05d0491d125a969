// The load generator's MQTT client: one TCP connection speaking 3.1.1 or 5.0 through the project's
// codec, driven by callbacks on its io_context's thread.
//
// It does what a load generator needs and no more: connect and subscribe, publish with QoS 0, 1
// or 2 (tracking packet identifiers and the acknowledgement flows, answering PUBREL for inbound
// QoS 2), keep alive, disconnect. Writes are batched: everything queued while a write is in flight
// goes out in the next single write. TCP_NODELAY is set, as it must be for a fair measurement.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mqtt/decoder.h"
#include "mqtt/packet.h"

namespace loadgen {

using Clock = std::chrono::steady_clock;

struct ClientOptions {
  std::string client_id;
  mqtt::Version version = mqtt::Version::k5;
  uint16_t keep_alive_s = 60;
  bool clean_start = true;
  uint32_t session_expiry_s = 0;  // 5.0, with clean_start false
};

// What the owner of a client is told. Each callback runs on the client's io_context thread.
class Client;
struct ClientEvents {
  std::function<void(Client&)> connected;                       // CONNACK with success
  std::function<void(Client&)> subscribed;                      // SUBACK
  std::function<void(Client&, const mqtt::Publish&)> message;   // an application message
  std::function<void(Client&)> published;                       // a QoS 1/2 flow completed
  std::function<void(Client&, const std::string& why)> closed;  // the connection failed
};

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint target, ClientOptions options,
         ClientEvents events);

  void Connect();
  void Subscribe(const std::string& filter, mqtt::QoS qos);
  // Queues a PUBLISH; returns false when the broker's Receive Maximum leaves no room for QoS > 0.
  bool Publish(const std::string& topic, std::string_view payload, mqtt::QoS qos);
  // Sends DISCONNECT and closes once it is written.
  void Disconnect();
  void Close();

  bool connected() const { return connected_; }
  // QoS 1/2 publishes not yet completed, and how many the broker allows.
  size_t inflight() const { return inflight_; }
  uint16_t receive_maximum() const { return receive_maximum_; }
  // CONNECT sent to CONNACK received.
  Clock::duration connect_latency() const { return connack_at_ - connect_sent_at_; }

 private:
  void Send(const mqtt::Packet& packet);
  void Flush();
  void Read();
  void OnPacket(mqtt::Packet&& packet);
  void ArmKeepAlive();
  void Fail(const std::string& why);
  uint16_t NextPacketId();

  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::endpoint target_;
  boost::asio::steady_timer keep_alive_timer_;
  ClientOptions options_;
  ClientEvents events_;
  std::vector<char> read_buffer_;
  mqtt::StreamDecoder decoder_;
  std::string pending_;  // queued while a write is in flight
  std::string writing_;  // the bytes of the write in flight
  bool write_in_flight_ = false;
  bool connected_ = false;
  bool closed_ = false;
  bool close_after_write_ = false;
  size_t inflight_ = 0;
  uint16_t receive_maximum_ = 65535;
  uint16_t last_packet_id_ = 0;
  Clock::time_point connect_sent_at_{};
  Clock::time_point connack_at_{};
  Clock::time_point last_sent_at_{};
};

}  // namespace loadgen
