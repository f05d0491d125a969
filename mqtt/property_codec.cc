// The property section codec. Which packet may carry which property follows the table of
// MQTT 5.0 §2.2.2.2; value ranges follow each property's own section in §3.
#include "mqtt/property_codec.h"

#include <cstdint>

#include "mqtt/topic.h"

namespace mqtt {
namespace {

// A set of contexts as a bitmask: bit n is packet type n, bit 0 is a will.
using ContextMask = uint16_t;
constexpr ContextMask Bit(PacketType t) {
  return ContextMask{1} << static_cast<int>(t);
}
constexpr ContextMask kWillBit = 1;
constexpr ContextMask kPublishAndWill = Bit(PacketType::kPublish) | kWillBit;
constexpr ContextMask kReasonStringContexts =
    Bit(PacketType::kConnack) | Bit(PacketType::kPuback) | Bit(PacketType::kPubrec) |
    Bit(PacketType::kPubrel) | Bit(PacketType::kPubcomp) | Bit(PacketType::kSuback) |
    Bit(PacketType::kUnsuback) | Bit(PacketType::kDisconnect) | Bit(PacketType::kAuth);

ContextMask AllowedContexts(PropertyId id) {
  using P = PacketType;
  switch (id) {
    case PropertyId::kPayloadFormatIndicator:
    case PropertyId::kMessageExpiryInterval:
    case PropertyId::kContentType:
    case PropertyId::kResponseTopic:
    case PropertyId::kCorrelationData:
      return kPublishAndWill;
    case PropertyId::kSubscriptionIdentifier:
      return Bit(P::kPublish) | Bit(P::kSubscribe);
    case PropertyId::kSessionExpiryInterval:
      return Bit(P::kConnect) | Bit(P::kConnack) | Bit(P::kDisconnect);
    case PropertyId::kAssignedClientIdentifier:
    case PropertyId::kServerKeepAlive:
    case PropertyId::kResponseInformation:
    case PropertyId::kMaximumQos:
    case PropertyId::kRetainAvailable:
    case PropertyId::kWildcardSubscriptionAvailable:
    case PropertyId::kSubscriptionIdentifierAvailable:
    case PropertyId::kSharedSubscriptionAvailable:
      return Bit(P::kConnack);
    case PropertyId::kAuthenticationMethod:
    case PropertyId::kAuthenticationData:
      return Bit(P::kConnect) | Bit(P::kConnack) | Bit(P::kAuth);
    case PropertyId::kRequestProblemInformation:
    case PropertyId::kRequestResponseInformation:
      return Bit(P::kConnect);
    case PropertyId::kWillDelayInterval:
      return kWillBit;
    case PropertyId::kServerReference:
      return Bit(P::kConnack) | Bit(P::kDisconnect);
    case PropertyId::kReasonString:
      return kReasonStringContexts;
    case PropertyId::kReceiveMaximum:
    case PropertyId::kTopicAliasMaximum:
    case PropertyId::kMaximumPacketSize:
      return Bit(P::kConnect) | Bit(P::kConnack);
    case PropertyId::kTopicAlias:
      return Bit(P::kPublish);
    case PropertyId::kUserProperty:
      return 0xFFFF;
  }
  return 0;  // unknown identifier
}

template <typename T>
void SetOnce(ByteReader& r, std::optional<T>& field, T value) {
  if (field.has_value()) {
    r.Fail(ReasonCode::kProtocolError, "property appears twice");
    return;
  }
  field = std::move(value);
}

void SetFlag(ByteReader& r, std::optional<uint8_t>& field, uint8_t value) {
  if (value > 1) {
    r.Fail(ReasonCode::kProtocolError, "property value must be 0 or 1");
    return;
  }
  SetOnce(r, field, value);
}

void ReadOne(ByteReader& r, PropertyId id, PropertyContext context, Properties& p) {
  switch (id) {
    case PropertyId::kPayloadFormatIndicator:
      SetFlag(r, p.payload_format_indicator, r.U8());
      return;
    case PropertyId::kMessageExpiryInterval:
      SetOnce(r, p.message_expiry_interval, r.U32());
      return;
    case PropertyId::kContentType:
      SetOnce(r, p.content_type, std::string(r.Utf8()));
      return;
    case PropertyId::kResponseTopic: {
      std::string_view topic = r.Utf8();
      if (r.ok() && !IsValidTopicName(topic)) {  // a topic name, no wildcards (§3.3.2.3.5)
        r.Fail(ReasonCode::kProtocolError, "response topic is not a topic name");
      }
      SetOnce(r, p.response_topic, std::string(topic));
      return;
    }
    case PropertyId::kCorrelationData:
      SetOnce(r, p.correlation_data, std::string(r.Binary()));
      return;
    case PropertyId::kSubscriptionIdentifier: {
      uint32_t v = r.VarInt();
      if (r.ok() && v == 0) r.Fail(ReasonCode::kProtocolError, "subscription identifier 0");
      // Only a server-to-client PUBLISH may carry several (§3.3.2.3.8).
      if (!p.subscription_identifiers.empty() && context.packet == PacketType::kSubscribe) {
        r.Fail(ReasonCode::kProtocolError, "property appears twice");
      }
      p.subscription_identifiers.push_back(v);
      return;
    }
    case PropertyId::kSessionExpiryInterval:
      SetOnce(r, p.session_expiry_interval, r.U32());
      return;
    case PropertyId::kAssignedClientIdentifier:
      SetOnce(r, p.assigned_client_identifier, std::string(r.Utf8()));
      return;
    case PropertyId::kServerKeepAlive:
      SetOnce(r, p.server_keep_alive, r.U16());
      return;
    case PropertyId::kAuthenticationMethod:
      SetOnce(r, p.authentication_method, std::string(r.Utf8()));
      return;
    case PropertyId::kAuthenticationData:
      SetOnce(r, p.authentication_data, std::string(r.Binary()));
      return;
    case PropertyId::kRequestProblemInformation:
      SetFlag(r, p.request_problem_information, r.U8());
      return;
    case PropertyId::kWillDelayInterval:
      SetOnce(r, p.will_delay_interval, r.U32());
      return;
    case PropertyId::kRequestResponseInformation:
      SetFlag(r, p.request_response_information, r.U8());
      return;
    case PropertyId::kResponseInformation:
      SetOnce(r, p.response_information, std::string(r.Utf8()));
      return;
    case PropertyId::kServerReference:
      SetOnce(r, p.server_reference, std::string(r.Utf8()));
      return;
    case PropertyId::kReasonString:
      SetOnce(r, p.reason_string, std::string(r.Utf8()));
      return;
    case PropertyId::kReceiveMaximum: {
      uint16_t v = r.U16();
      if (r.ok() && v == 0) r.Fail(ReasonCode::kProtocolError, "receive maximum 0");
      SetOnce(r, p.receive_maximum, v);
      return;
    }
    case PropertyId::kTopicAliasMaximum:
      SetOnce(r, p.topic_alias_maximum, r.U16());
      return;
    case PropertyId::kTopicAlias: {
      uint16_t v = r.U16();
      if (r.ok() && v == 0) r.Fail(ReasonCode::kTopicAliasInvalid, "topic alias 0");
      SetOnce(r, p.topic_alias, v);
      return;
    }
    case PropertyId::kMaximumQos:
      SetFlag(r, p.maximum_qos, r.U8());
      return;
    case PropertyId::kRetainAvailable:
      SetFlag(r, p.retain_available, r.U8());
      return;
    case PropertyId::kUserProperty: {
      std::string_view key = r.Utf8();
      std::string_view value = r.Utf8();
      p.user_properties.emplace_back(key, value);
      return;
    }
    case PropertyId::kMaximumPacketSize: {
      uint32_t v = r.U32();
      if (r.ok() && v == 0) r.Fail(ReasonCode::kProtocolError, "maximum packet size 0");
      SetOnce(r, p.maximum_packet_size, v);
      return;
    }
    case PropertyId::kWildcardSubscriptionAvailable:
      SetFlag(r, p.wildcard_subscription_available, r.U8());
      return;
    case PropertyId::kSubscriptionIdentifierAvailable:
      SetFlag(r, p.subscription_identifier_available, r.U8());
      return;
    case PropertyId::kSharedSubscriptionAvailable:
      SetFlag(r, p.shared_subscription_available, r.U8());
      return;
  }
}

// Visits every present property as (id, value) for sizing and writing alike, so the two cannot
// disagree. Strings and binary data share one representation on the wire.
template <typename Visitor>
void ForEach(const Properties& p, Visitor&& v) {
  auto opt = [&](PropertyId id, const auto& field) {
    if (field.has_value()) v(id, *field);
  };
  opt(PropertyId::kPayloadFormatIndicator, p.payload_format_indicator);
  opt(PropertyId::kMessageExpiryInterval, p.message_expiry_interval);
  opt(PropertyId::kContentType, p.content_type);
  opt(PropertyId::kResponseTopic, p.response_topic);
  opt(PropertyId::kCorrelationData, p.correlation_data);
  for (uint32_t id : p.subscription_identifiers)
    v(PropertyId::kSubscriptionIdentifier, id);
  opt(PropertyId::kSessionExpiryInterval, p.session_expiry_interval);
  opt(PropertyId::kAssignedClientIdentifier, p.assigned_client_identifier);
  opt(PropertyId::kServerKeepAlive, p.server_keep_alive);
  opt(PropertyId::kAuthenticationMethod, p.authentication_method);
  opt(PropertyId::kAuthenticationData, p.authentication_data);
  opt(PropertyId::kRequestProblemInformation, p.request_problem_information);
  opt(PropertyId::kWillDelayInterval, p.will_delay_interval);
  opt(PropertyId::kRequestResponseInformation, p.request_response_information);
  opt(PropertyId::kResponseInformation, p.response_information);
  opt(PropertyId::kServerReference, p.server_reference);
  opt(PropertyId::kReasonString, p.reason_string);
  opt(PropertyId::kReceiveMaximum, p.receive_maximum);
  opt(PropertyId::kTopicAliasMaximum, p.topic_alias_maximum);
  opt(PropertyId::kTopicAlias, p.topic_alias);
  opt(PropertyId::kMaximumQos, p.maximum_qos);
  opt(PropertyId::kRetainAvailable, p.retain_available);
  for (const auto& kv : p.user_properties)
    v(PropertyId::kUserProperty, kv);
  opt(PropertyId::kMaximumPacketSize, p.maximum_packet_size);
  opt(PropertyId::kWildcardSubscriptionAvailable, p.wildcard_subscription_available);
  opt(PropertyId::kSubscriptionIdentifierAvailable, p.subscription_identifier_available);
  opt(PropertyId::kSharedSubscriptionAvailable, p.shared_subscription_available);
}

struct Sizer {
  size_t total = 0;
  void operator()(PropertyId, uint8_t) { total += 2; }
  void operator()(PropertyId, uint16_t) { total += 3; }
  void operator()(PropertyId id, uint32_t v) {
    total += 1 + (id == PropertyId::kSubscriptionIdentifier ? VarIntSize(v) : 4);
  }
  void operator()(PropertyId, const std::string& s) { total += 3 + s.size(); }
  void operator()(PropertyId, const std::pair<std::string, std::string>& kv) {
    total += 5 + kv.first.size() + kv.second.size();
  }
};

struct Writer {
  ByteWriter& w;
  void operator()(PropertyId id, uint8_t v) {
    w.U8(static_cast<uint8_t>(id));
    w.U8(v);
  }
  void operator()(PropertyId id, uint16_t v) {
    w.U8(static_cast<uint8_t>(id));
    w.U16(v);
  }
  void operator()(PropertyId id, uint32_t v) {
    w.U8(static_cast<uint8_t>(id));
    if (id == PropertyId::kSubscriptionIdentifier) {
      w.VarInt(v);
    } else {
      w.U32(v);
    }
  }
  void operator()(PropertyId id, const std::string& s) {
    w.U8(static_cast<uint8_t>(id));
    w.Binary(s);
  }
  void operator()(PropertyId id, const std::pair<std::string, std::string>& kv) {
    w.U8(static_cast<uint8_t>(id));
    w.Binary(kv.first);
    w.Binary(kv.second);
  }
};

}  // namespace

void ReadProperties(ByteReader& r, PropertyContext context, Properties& out) {
  uint32_t length = r.VarInt();
  ByteReader section(r.Bytes(length));
  if (!r.ok()) return;
  ContextMask here = context.will ? kWillBit : Bit(context.packet);
  while (!section.empty() && section.ok()) {
    // The identifier is a Variable Byte Integer, but every defined one fits in its first byte.
    uint32_t raw = section.VarInt();
    auto id = static_cast<PropertyId>(raw);
    ContextMask allowed = raw <= 0xFF ? AllowedContexts(id) : 0;
    if (allowed == 0) {
      section.Fail(ReasonCode::kMalformedPacket, "unknown property identifier");
    } else if ((allowed & here) == 0) {
      section.Fail(ReasonCode::kProtocolError, "property not allowed in this packet");
    } else {
      ReadOne(section, id, context, out);
    }
  }
  r.Adopt(section);
}

size_t PropertiesBodySize(const Properties& p) {
  Sizer sizer;
  ForEach(p, sizer);
  return sizer.total;
}

void WritePropertiesBody(ByteWriter& w, const Properties& p) {
  ForEach(p, Writer{w});
}

size_t PropertySize(PropertyId id, uint32_t value) {
  Sizer sizer;
  if (id == PropertyId::kTopicAlias) {
    sizer(id, static_cast<uint16_t>(value));
  } else {
    sizer(id, value);
  }
  return sizer.total;
}

void WriteProperty(ByteWriter& w, PropertyId id, uint32_t value) {
  Writer writer{w};
  if (id == PropertyId::kTopicAlias) {
    writer(id, static_cast<uint16_t>(value));
  } else {
    writer(id, value);
  }
}

size_t UserPropertySize(std::string_view key, std::string_view value) {
  return 5 + key.size() + value.size();
}

void WriteUserProperty(ByteWriter& w, std::string_view key, std::string_view value) {
  w.U8(static_cast<uint8_t>(PropertyId::kUserProperty));
  w.Binary(key);
  w.Binary(value);
}

}  // namespace mqtt
