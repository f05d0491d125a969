// MQTT control packets (MQTT 3.1.1 §3, MQTT 5.0 §3) as plain values, one struct per packet type.
//
// The same structs serve both versions: the fields 3.1.1 lacks (properties, most reason codes) are
// left at their defaults when decoding 3.1.1 and ignored when encoding it. A decoded packet owns
// its strings; the broker moves the topic and payload of a PUBLISH into its shared message, so a
// payload is copied out of the read buffer once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "mqtt/properties.h"
#include "mqtt/reason_code.h"

namespace mqtt {

// The protocol level byte of CONNECT (§3.1.2.2). 3.1 (protocol name "MQIsdp") shares 3.1.1's
// packets; what differs is checked where it matters (CONNECT's name, CONNACK's first byte, the
// empty client id).
enum class Version : uint8_t { k31 = 3, k311 = 4, k5 = 5 };

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

std::string_view PacketTypeName(PacketType type);

enum class QoS : uint8_t { k0 = 0, k1 = 1, k2 = 2 };

struct Will {
  std::string topic;
  std::string payload;
  QoS qos = QoS::k0;
  bool retain = false;
  Properties properties;  // 5.0 will properties (§3.1.3.2)
  bool operator==(const Will&) const = default;
};

struct Connect {
  Version version = Version::k5;
  bool clean_start = true;  // "clean session" in 3.1.1
  uint16_t keep_alive_s = 0;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  Properties properties;
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::string topic;
  std::string payload;
  QoS qos = QoS::k0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // only for QoS 1 and 2
  Properties properties;
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one layout (§3.4 to §3.7).
template <PacketType kType>
struct Ack {
  static constexpr PacketType type = kType;
  uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const Ack&) const = default;
};
using Puback = Ack<PacketType::kPuback>;
using Pubrec = Ack<PacketType::kPubrec>;
using Pubrel = Ack<PacketType::kPubrel>;
using Pubcomp = Ack<PacketType::kPubcomp>;

// Subscription Options byte (MQTT 5.0 §3.8.3.1); 3.1.1 has only the QoS.
struct SubscriptionOptions {
  QoS qos = QoS::k0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;  // 0 send retained, 1 only if new, 2 never
  bool operator==(const SubscriptionOptions&) const = default;
};

struct TopicSubscription {
  std::string filter;
  SubscriptionOptions options;
  bool operator==(const TopicSubscription&) const = default;
};

struct Subscribe {
  uint16_t packet_id = 0;
  std::vector<TopicSubscription> topics;
  Properties properties;
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  uint16_t packet_id = 0;
  std::vector<ReasonCode> reasons;  // one per topic; 3.1.1 maps errors to 0x80
  Properties properties;
  bool operator==(const Suback&) const = default;
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  std::vector<std::string> filters;
  Properties properties;
  bool operator==(const Unsubscribe&) const = default;
};

struct Unsuback {
  uint16_t packet_id = 0;
  std::vector<ReasonCode> reasons;  // 5.0 only
  Properties properties;
  bool operator==(const Unsuback&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

struct Disconnect {
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const Disconnect&) const = default;
};

struct Auth {
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const Auth&) const = default;
};

using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

PacketType TypeOf(const Packet& packet);

}  // namespace mqtt
