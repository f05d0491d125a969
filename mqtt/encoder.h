// Encoding MQTT packets for a session of a given version.
//
// Encode() appends any packet. A broker sending one message to many subscribers does not build a
// Publish per subscriber: it writes a PublishHeader (everything but the payload, with the
// per-recipient packet identifier, flags, subscription identifiers and topic alias) in front of a
// payload it shares between them all.
//
//   std::string out;
//   Encode(Puback{.packet_id = 7}, Version::k5, out);
//   EncodePublishHeader({.topic = "a/b", .qos = QoS::k1, .packet_id = 8}, payload.size(),
//                       Version::k5, out);
//   out.append(payload);
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "mqtt/packet.h"

namespace mqtt {

// Appends `packet` encoded for `version` to `out`. For 3.1.1 the fields 3.1.1 lacks are dropped
// and reason codes map to its return codes. A CONNECT is encoded in the version it names itself
// (Connect::version), since it is what sets the session's version. The packet must be valid:
// strings at most 65535 bytes, packet identifiers non-zero where required.
void Encode(const Packet& packet, Version version, std::string& out);

// A PUBLISH without its payload.
struct PublishHeader {
  std::string_view topic;  // empty when an established topic alias stands for it
  QoS qos = QoS::k0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  // Properties passed through from the publisher. They must not hold the per-recipient ones below.
  const Properties* properties = nullptr;
  // Per-recipient properties (MQTT 5.0 §3.3.2.3).
  std::span<const uint32_t> subscription_identifiers;
  std::optional<uint16_t> topic_alias;
  std::optional<uint32_t> message_expiry_interval;
  // User properties added after the publisher's (for example by a broker forwarding the message
  // to another broker with instructions).
  std::span<const std::pair<std::string, std::string>> extra_user_properties;
};

// Appends the fixed and variable header of a PUBLISH whose payload of `payload_size` bytes the
// caller writes right after. Returns the size of the whole packet, payload included.
size_t EncodePublishHeader(const PublishHeader& header, size_t payload_size, Version version,
                           std::string& out);

// The size EncodePublishHeader would report, without writing anything.
size_t PublishPacketSize(const PublishHeader& header, size_t payload_size, Version version);

}  // namespace mqtt
