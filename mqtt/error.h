// Codec errors: an absl::Status that also carries the MQTT reason code the spec prescribes.
//
// The decoder reports every violation as a Status whose message says what was wrong and whose
// payload holds the reason code to answer with (0x81 Malformed Packet, 0x82 Protocol Error, 0x95
// Packet too large, ...). The broker reads it with ReasonOf() to build its CONNACK or DISCONNECT.
//
//   absl::StatusOr<Packet> p = DecodePacket(frame, Version::k5);
//   if (!p.ok()) SendDisconnect(ReasonOf(p.status()));
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "mqtt/reason_code.h"

namespace mqtt {

[[nodiscard]] absl::Status CodecError(ReasonCode reason, std::string_view message);

// The reason code inside a codec error; kUnspecifiedError for any other non-OK status.
ReasonCode ReasonOf(const absl::Status& status);

}  // namespace mqtt
