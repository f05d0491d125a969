// The state of one MQTT session, apart from any connection: what it subscribed to, what it owes
// and is owed in the QoS 1 and 2 flows, and what waits to be sent (MQTT 5.0 §4.1).
//
// A Session is pure state with no sockets and no clock of its own; the connection drives it.
// Outbound, a message goes through three stages:
//
//   Enqueue() ──► queue (bounded: max_queued) ──► PopNext() ──► in flight (bounded: send window)
//                                                    │               │ PUBACK / PUBREC+PUBCOMP
//                                                    └─ QoS 0: sent, forgotten
//
// In flight entries keep their packet identifier until acknowledged, so that on reconnect
// Resends() repeats them, in their original order and with their original identifiers, as PUBLISH
// with DUP set or as PUBREL (§4.4). Inbound, the session remembers the QoS 2 packet identifiers it
// has received but not yet seen released, so a retransmitted PUBLISH is not delivered twice
// (§4.3.3, method B of the spec's Figure 4.3 is not used: delivery happens on first receipt).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "backend/message.h"

namespace backend {

// One message bound for one session, with what this session's subscriptions made of it.
struct Delivery {
  MessagePtr message;
  mqtt::QoS qos = mqtt::QoS::k0;  // min(published QoS, best granted QoS)
  bool retain = false;            // the RETAIN flag to send
  absl::InlinedVector<uint32_t, 1> subscription_ids;
};

// A packet the connection must write for the session.
struct Outgoing {
  enum class Kind { kPublish, kPubrel };
  Kind kind = Kind::kPublish;
  uint16_t packet_id = 0;  // 0 for a QoS 0 PUBLISH
  bool dup = false;
  Delivery delivery;  // for kPublish
};

// What a session remembers of one of its subscriptions.
struct SubscriptionRecord {
  mqtt::SubscriptionOptions options;
  uint32_t subscription_id = 0;  // 0: none
};
// A session's subscriptions by full filter ("$share/GROUP/" included).
using Subscriptions = std::map<std::string, SubscriptionRecord>;

// Everything a session is, as data: what one node hands another when a client moves, and what
// a node keeps in Redis of a persistent session (session_codec.h encodes it).
struct SessionSnapshot {
  Subscriptions subscriptions;
  std::vector<Outgoing> inflight;  // oldest first, as Resends() gives them
  std::vector<Delivery> queued;
  std::vector<uint16_t> inbound_qos2;
  uint32_t expiry_s = 0;  // the session expiry interval it had (0xFFFFFFFF: never)
  // A will not published yet, and how long it still waits: the will of a connection that ended
  // (delay: what is left of its Will Delay Interval), or, in the record of a connected client,
  // the connection's own (delay: all of it; published by whoever adopts the session if the
  // node dies). The shard keeps it beside the Session (Snapshot and Restore leave it alone).
  struct PendingWill {
    mqtt::Will will;
    std::chrono::milliseconds delay{0};
  };
  std::optional<PendingWill> will;
};

class Session {
 public:
  enum class EnqueueResult { kQueued, kQueueFull, kOfflineQos0 };
  enum class AckResult { kDone, kSendPubrel, kUnknown };

  Session(std::string client_id, uint64_t id, size_t max_queued);

  const std::string& client_id() const { return client_id_; }
  uint64_t id() const { return id_; }

  // Outbound. `online` says whether a connection is attached: an offline session keeps QoS 1 and
  // 2 messages only (QoS 0 is dropped, as mosquitto does by default). The queue holds at most
  // max_queued messages beyond those the send window can take now: max_queued plus the window's
  // free slots while online, max_queued while offline.
  EnqueueResult Enqueue(Delivery delivery, bool online);
  // The next PUBLISH to send, if any is queued and, for QoS 1 and 2, the send window has room.
  // Assigns its packet identifier. Messages that expired while queued are skipped and counted in
  // expired_dropped().
  std::optional<Outgoing> PopNext(Clock::time_point now);
  // How many PUBLISH packets may be unacknowledged at once: the client's Receive Maximum capped by
  // the server's limit (MQTT 5.0 §4.9).
  void set_send_window(uint16_t window) { send_window_ = window; }

  AckResult OnPuback(uint16_t packet_id);
  // A PUBREC with an error reason code ends the flow without PUBREL (§4.3.3).
  AckResult OnPubrec(uint16_t packet_id, mqtt::ReasonCode reason);
  AckResult OnPubcomp(uint16_t packet_id);
  // Forgets an in-flight message that could not be sent at all (too large for the client).
  void Forget(uint16_t packet_id) { inflight_.erase(packet_id); }
  // Everything in flight, oldest first, as it must be repeated on a new connection.
  std::vector<Outgoing> Resends() const;

  SessionSnapshot Snapshot() const;
  // Takes over a snapshot's state (this session must be new): the in-flight messages keep their
  // packet identifiers and flow states, to be resent on the next connection.
  void Restore(SessionSnapshot snapshot);

  // Inbound QoS 2. True if `packet_id` is new (deliver the message), false for a retransmission.
  bool BeginInboundQos2(uint16_t packet_id);
  // True if `packet_id` was pending release.
  bool ReleaseInboundQos2(uint16_t packet_id);
  size_t inbound_qos2_pending() const { return inbound_qos2_.size(); }

  size_t queued() const { return queue_.size(); }
  size_t inflight() const { return inflight_.size(); }
  uint64_t expired_dropped() const { return expired_dropped_; }

  // The session's subscriptions by filter (shared ones as "$share/GROUP/FILTER").
  Subscriptions& subscriptions() { return subscriptions_; }
  const Subscriptions& subscriptions() const { return subscriptions_; }
  // Whether any of its subscriptions (shared ones too) matches `topic`.
  bool Subscribed(std::string_view topic) const;

 private:
  enum class FlightState { kAwaitPuback, kAwaitPubrec, kAwaitPubcomp };
  struct InFlight {
    Delivery delivery;
    FlightState state;
    uint64_t seq;  // send order, for Resends()
  };

  uint16_t NextPacketId();

  std::string client_id_;
  uint64_t id_;
  size_t max_queued_;
  uint16_t send_window_ = 65535;
  std::deque<Delivery> queue_;
  absl::flat_hash_map<uint16_t, InFlight> inflight_;
  uint64_t next_seq_ = 0;
  uint16_t last_packet_id_ = 0;
  absl::flat_hash_set<uint16_t> inbound_qos2_;
  uint64_t expired_dropped_ = 0;
  Subscriptions subscriptions_;
};

}  // namespace backend
