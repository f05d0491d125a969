// MQTT reason codes (MQTT 5.0 §2.4) and the MQTT 3.1.1 return codes they map onto.
//
// The whole project speaks in 5.0 reason codes. A 3.1.1 session has fewer answers: CONNACK has six
// return codes (§3.2.2.3), SUBACK grants or fails with 0x80 (§3.9.3), and every other packet has
// none, so an error there can only close the connection. The encoder maps at the wire.
#pragma once

#include <cstdint>
#include <string_view>

namespace mqtt {

enum class ReasonCode : uint8_t {
  kSuccess = 0x00,  // also Normal disconnection, Granted QoS 0
  kGrantedQos1 = 0x01,
  kGrantedQos2 = 0x02,
  kDisconnectWithWill = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReauthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQosNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};

// True for the codes of 0x80 and above, which report a failure (MQTT 5.0 §2.4).
constexpr bool IsError(ReasonCode code) { return static_cast<uint8_t>(code) >= 0x80; }

// The spec's name of a reason code, for logs and metrics labels ("malformed_packet").
std::string_view ReasonName(ReasonCode code);

// The MQTT 3.1.1 CONNACK return code (§3.2.2.3) closest to a 5.0 CONNACK reason code.
uint8_t ToConnackReturnCode311(ReasonCode code);
// The inverse, for decoding a 3.1.1 CONNACK.
ReasonCode FromConnackReturnCode311(uint8_t code);

}  // namespace mqtt
