// One client's network connection, from its CONNECT on: reads and decodes packets, hands each to
// its handler, writes what the session owes the client, and enforces keep alive and the limits.
//
// The connection lives on its session's shard and is kept alive by its pending operations
// (shared_from_this). It never blocks: reads wait for readability and then read what is there into
// the shard's scratch buffer; what is owed to the client is written at the shard's flush, once
// per event-loop pass, and waits for writability only when the socket is full. When more than
// max_write_buffer_bytes wait to be written, the connection stops draining the session queue and
// stops reading the client, until the client catches up.
//
// The packet handlers are grouped by protocol action, one file each as in mosquitto:
// handle_connect.cc (CONNECT, CONNACK, resuming), handle_publish.cc (inbound PUBLISH and PUBREL,
// outbound PUBLISH), handle_ack.cc (PUBACK, PUBREC, PUBCOMP), handle_subscribe.cc (SUBSCRIBE,
// UNSUBSCRIBE); connection.cc has the I/O and the rest.
#pragma once

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "backend/ack_wait.h"
#include "backend/backpressure.h"
#include "backend/node_link.h"
#include "backend/out_buffer.h"
#include "backend/session.h"
#include "backend/shard.h"
#include "backend/socket_token.h"
#include "mqtt/packet.h"

namespace backend {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Shard& shard, boost::asio::ip::tcp::socket socket, ConnectionSeed seed);
  ~Connection();

  // Attaches the session, answers the CONNACK and starts reading (in a cluster, once the client
  // id is this node's). On the shard's thread.
  void Start();
  // Moves queued messages of the session into the socket while the window and the write buffer
  // allow, then writes; resumes a paused read if everything went out. Called at the shard's
  // flush (through Shard::MarkDirty) and when the socket is writable again.
  void Pump();
  // The same without writing: moves queued messages into the write buffer only, for the shard's
  // flush to write. Safe in the middle of routing, as it cannot close the connection. Returns true
  // if it stopped because the write buffer reached its limit, with messages perhaps left queued.
  bool Drain();
  // Server-initiated close: a DISCONNECT with `reason` in 5.0, then close. The will is published
  // only if `publish_will`.
  void Disconnect(mqtt::ReasonCode reason, bool publish_will);
  // The session moves to a new connection of the same client id (takeover). Closes with 0x8E and
  // returns what the caller decides about: this connection's will and the session expiry it had.
  struct HandedOver {
    std::optional<mqtt::Will> will;
    uint32_t session_expiry_s = 0;
  };
  HandedOver HandOver();

  // The will this connection's CONNECT carried, while it has not been published or discarded.
  const std::optional<mqtt::Will>& will() const { return will_; }
  // Another node's link to this one (node_link.h), rather than a client.
  bool is_node_link() const { return !link_peer_.empty(); }
  // A message routed to this client as it was published (not a retained one sent on
  // subscribing). On the shard's thread.
  void NoteLive(const Message& m) {
    if (subscribes_pending_ == 0) return;
    Clock::time_point& newest = live_while_subscribing_[m.topic];
    newest = std::max(newest, m.received_at);
  }
  bool dirty = false;  // queued for the shard's flush

 private:
  // Start, once the client id is this node's.
  void Begin();

  // Reading.
  void WaitReadable();
  void OnReadable(const boost::system::error_code& ec);
  // One read and the packets it completes; false when there was nothing to read or the
  // connection closed. Pauses reading when the write buffer is over its limit.
  bool ReadOnce();
  // Reads what the client has sent and we have not read yet (a bounded amount), when it matters
  // out of turn: reading is paused and the keep alive is due, or the connection is closing.
  void ReadPending();
  // Decodes and handles every whole packet in `data`, read at `now`; returns the bytes consumed.
  size_t Process(std::string_view data, Clock::time_point now);
  void Dispatch(mqtt::Packet&& packet);

  // Handlers.
  void HandleConnect();
  void HandlePublish(mqtt::Publish&& publish);
  void HandlePubrel(const mqtt::Pubrel& pubrel);
  void HandlePuback(const mqtt::Puback& puback);
  void HandlePubrec(const mqtt::Pubrec& pubrec);
  void HandlePubcomp(const mqtt::Pubcomp& pubcomp);
  void HandleSubscribe(mqtt::Subscribe&& subscribe);
  void HandleUnsubscribe(mqtt::Unsubscribe&& unsubscribe);
  void HandleDisconnect(const mqtt::Disconnect& disconnect);

  // Writing.
  void Send(const mqtt::Packet& packet);
  void SendOutgoing(const Outgoing& outgoing, Clock::time_point now);
  // Sends the held resends, in order, while the client's Receive Maximum allows.
  void SendHeldResends(Clock::time_point now);
  // Forgets the held resend of `packet_id`, whose flow an acknowledgement has just advanced.
  void DropHeldResend(uint16_t packet_id);
  void Flush();
  void OnWritable(const boost::system::error_code& ec);
  void CloseAfterWriteError();
  // Resumes reading once the write buffer has drained below half its limit.
  void MaybeResumeReading();
  // Stops reading until `congested` drains: a node link or another shard this client's messages
  // feed does not keep up (backpressure.h).
  void PauseFor(Backpressure& congested);
  // QoS acknowledgements go out in the order of their PUBLISH (§4.6), each when every node its
  // message went to has taken it (handle_publish.cc).
  std::shared_ptr<AckWait> HoldAck(mqtt::QoS qos, uint16_t packet_id, mqtt::ReasonCode reason);
  void SendAck(mqtt::QoS qos, uint16_t packet_id, mqtt::ReasonCode reason);
  // Sends the acknowledgement now, or, while earlier ones are held, in its turn behind them.
  void Acknowledge(mqtt::QoS qos, uint16_t packet_id, mqtt::ReasonCode reason);
  void ReleaseAcks();
  // A message another node forwarded over its link to this node (handle_publish.cc).
  void HandleForward(mqtt::Publish&& publish);

  // Keep alive: one timer, re-armed lazily from the time of the last packet.
  void ArmKeepAlive(Clock::time_point deadline);
  void OnKeepAlive(const boost::system::error_code& ec);

  // Closes the connection; see Disconnect.
  void Close(std::optional<mqtt::ReasonCode> disconnect_reason, bool publish_will);
  void ProtocolError(mqtt::ReasonCode reason, std::string_view why);

  Shard& shard_;
  boost::asio::ip::tcp::socket socket_;
  SocketToken token_;
  ClientSlot slot_;  // given back when the connection object goes
  boost::asio::steady_timer keep_alive_timer_;
  mqtt::Connect connect_;
  bool client_id_assigned_;
  std::string rx_;  // bytes of an incomplete packet, between reads
  OutBuffer out_;

  mqtt::Version version_;
  Session* session_ = nullptr;
  std::optional<mqtt::Will> will_;
  uint32_t will_delay_s_ = 0;
  uint32_t session_expiry_s_ = 0;
  std::chrono::milliseconds keep_alive_timeout_{0};  // 0: none
  Clock::time_point last_packet_at_;                 // when the last whole packet arrived

  // What the session had in flight when this connection began and the client's Receive Maximum
  // has not let out yet (MQTT 5.0 §4.9: the send quota starts afresh with each connection).
  // Resent, in their original order, as acknowledgements free the window; new messages wait
  // behind them.
  std::deque<Outgoing> held_resends_;
  uint16_t send_window_ = 0;

  // What the client told us in CONNECT (5.0 §3.1.2.11).
  uint32_t client_max_packet_ = 0;  // 0: no limit
  uint16_t client_alias_max_ = 0;
  StringMap<uint16_t> aliases_out_;      // topic → alias we assigned
  std::vector<std::string> aliases_in_;  // alias → topic the client assigned

  bool reading_ = false;      // an async_wait for readability is pending
  bool read_paused_ = false;  // stopped reading because of a full write buffer
  bool held_back_ = false;    // stopped reading by PauseFor
  struct HeldAck {
    uint64_t seq;
    mqtt::QoS qos;
    uint16_t packet_id;
    mqtt::ReasonCode reason;
    bool ready;
  };
  std::deque<HeldAck> held_acks_;
  uint64_t next_ack_seq_ = 0;
  // SUBSCRIBEs whose SUBACK (and retained messages) wait for the other shards and Redis; and,
  // meanwhile, the newest live message of each topic this client was sent (HandleSubscribe).
  uint32_t subscribes_pending_ = 0;
  absl::flat_hash_map<std::string, Clock::time_point> live_while_subscribing_;
  bool malformed_forward_logged_ = false;  // once per link
  // This connection is another node's link (client id "$node/..." with sb.link.node).
  std::string link_peer_;
  bool writing_ = false;  // an async_wait for writability is pending
  bool closed_ = false;
  std::string peer_;  // for logs
};

}  // namespace backend
