// An application message inside the broker: what one PUBLISH (or will) carried, immutable once
// built and shared by every session it is delivered to.
//
// The broker decodes a PUBLISH once, moves its topic and payload here, and hands the same
// shared_ptr<const Message> to each matching session, the retained store and, later, the cluster
// link. What differs per recipient (packet identifier, QoS, RETAIN, subscription identifiers, topic
// alias) is written in the header at send time, in front of this one payload.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "mqtt/packet.h"

namespace backend {

using Clock = std::chrono::steady_clock;

struct Message {
  std::string topic;
  std::string payload;
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  // Passed through to subscribers: the publisher's properties without Topic Alias, Subscription
  // Identifiers and Message Expiry Interval, which are per hop (MQTT 5.0 §3.3.2.3). Null when
  // none is left, as for most messages: a Properties is some 500 bytes, and a message is built
  // for every PUBLISH.
  std::unique_ptr<const mqtt::Properties> properties;
  // From the Message Expiry Interval; a message past it is not delivered (§3.3.2.3.3).
  std::optional<Clock::time_point> expires_at;
  // The session that published it, for No Local (§3.8.3.1); 0 for none.
  uint64_t publisher_session = 0;
  // When this node took it in: which of two copies of a topic's state is the newer.
  Clock::time_point received_at;

  bool expired(Clock::time_point now) const { return expires_at && now >= *expires_at; }
};

using MessagePtr = std::shared_ptr<const Message>;

// Builds a Message from a decoded PUBLISH or will, moving its strings.
MessagePtr MakeMessage(std::string topic, std::string payload, mqtt::QoS qos, bool retain,
                       mqtt::Properties properties, uint64_t publisher_session,
                       Clock::time_point now);

// A message as bytes, to be kept outside this process (the cluster's retained hash, a session
// handed to another node or recorded in Redis): a marker byte (1), the time at which it expires
// on the cluster's clock (u64 milliseconds since the Unix epoch, 0 for never), then an MQTT 5
// PUBLISH with the expiry interval left at `now`. That time, not the interval, says how long it
// has left when read: it may be read hours later, by another node, and must not come back to
// life then (§3.3.2.3.3). Bytes of the format before (the PUBLISH alone, its interval counted from
// the decoding) are still read.
std::string EncodeMessage(const Message& message, Clock::time_point now);
[[nodiscard]] absl::StatusOr<MessagePtr> DecodeMessage(std::string_view bytes,
                                                       Clock::time_point now);
// Whether `bytes` are of the format before, whose expiry is an interval counted from its reading.
bool IsIntervalFormat(std::string_view bytes);

// The cluster's clock, which stored expiry times are on: this host's wall clock plus the offset
// a cluster measured against Redis's (TIME), as heartbeats are judged, so that nodes need no
// synchronised clocks. Without a cluster, this host's. Thread-safe.
int64_t WallClockMillis();
void SetWallClockOffset(std::chrono::milliseconds offset);
// This host's wall clock alone, in milliseconds since the Unix epoch (to measure the offset).
int64_t HostClockMillis();

}  // namespace backend
