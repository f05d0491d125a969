// The packet decoder. Each Decode* function reads one packet type as its section of the spec
// describes it; the fixed header was checked by ParseFrame before.
#include "mqtt/decoder.h"

#include "mqtt/error.h"
#include "mqtt/property_codec.h"
#include "mqtt/topic.h"
#include "mqtt/wire.h"

namespace mqtt {
namespace {

using R = ReasonCode;

constexpr uint8_t kDup = 0x8;

bool CarriesQos1Flags(PacketType type) {
  return type == PacketType::kPubrel || type == PacketType::kSubscribe ||
         type == PacketType::kUnsubscribe;
}

// The flags each packet type must carry (§2.1.3); PUBLISH's flags are checked separately. MQTT
// 3.1 lets a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE set DUP, which only DecodePacket, knowing
// the version, can judge.
bool FlagsValid(PacketType type, uint8_t flags) {
  if (type == PacketType::kPublish) return ((flags >> 1) & 0x3) != 3;  // QoS 3 is malformed
  if (CarriesQos1Flags(type)) return (flags & ~kDup) == 0x2;
  return flags == 0;
}

uint16_t ReadPacketId(ByteReader& r) {
  uint16_t id = r.U16();
  if (r.ok() && id == 0) r.Fail(R::kProtocolError, "packet identifier 0");
  return id;
}

void ExpectEnd(ByteReader& r) {
  if (!r.empty()) r.Fail(R::kMalformedPacket, "unexpected bytes at the end of the packet");
}

// The packets that may carry a reason code in 5.0, as a bitmask of packet types: the table of
// MQTT 5.0 §2.4. 0 for a value that is no reason code.
uint16_t PacketsUsing(ReasonCode reason) {
  using P = PacketType;
  auto bit = [](PacketType t) { return static_cast<uint16_t>(1 << static_cast<int>(t)); };
  const uint16_t connack = bit(P::kConnack), disconnect = bit(P::kDisconnect);
  const uint16_t pub_ack = bit(P::kPuback) | bit(P::kPubrec);
  const uint16_t sub_acks = bit(P::kSuback) | bit(P::kUnsuback);
  switch (static_cast<uint8_t>(reason)) {
    case 0x00: return 0xFFFF;
    case 0x01:
    case 0x02: return bit(P::kSuback);
    case 0x04: return disconnect;
    case 0x10: return pub_ack;
    case 0x11: return bit(P::kUnsuback);
    case 0x18:
    case 0x19: return bit(P::kAuth);
    case 0x80:
    case 0x83:
    case 0x87: return connack | pub_ack | sub_acks | disconnect;
    case 0x81:
    case 0x82:
    case 0x89:
    case 0x8C:
    case 0x95:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9F: return connack | disconnect;
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x88:
    case 0x8A: return connack;
    case 0x8B:
    case 0x8D:
    case 0x8E:
    case 0x93:
    case 0x94:
    case 0x96:
    case 0x98:
    case 0xA0: return disconnect;
    case 0x8F: return sub_acks | disconnect;
    case 0x90:
    case 0x99: return connack | pub_ack | disconnect;
    case 0x91: return pub_ack | sub_acks;
    case 0x92: return bit(P::kPubrel) | bit(P::kPubcomp);
    case 0x97: return connack | pub_ack | bit(P::kSuback) | disconnect;
    case 0x9E:
    case 0xA1:
    case 0xA2: return bit(P::kSuback) | disconnect;
    default: return 0;
  }
}

bool ReasonValid(PacketType type, ReasonCode reason) {
  return (PacketsUsing(reason) >> static_cast<int>(type)) & 1;
}

// The reason codes of SUBACK and UNSUBACK, one per topic filter; there is at least one, because
// SUBSCRIBE and UNSUBSCRIBE carry at least one filter.
void ReadReasonList(ByteReader& r, PacketType type, Version v, std::vector<ReasonCode>& out) {
  for (char c : r.Rest()) {
    auto reason = static_cast<ReasonCode>(static_cast<uint8_t>(c));
    if (v == Version::k5 && !ReasonValid(type, reason)) {
      r.Fail(R::kProtocolError, "invalid reason code");
    } else if (v != Version::k5 && reason != R::kSuccess && reason != R::kGrantedQos1 &&
               reason != R::kGrantedQos2 && reason != R::kUnspecifiedError) {
      r.Fail(R::kMalformedPacket, "invalid SUBACK return code");  // 3.1.1 §3.9.3
    }
    out.push_back(reason);
  }
  if (r.ok() && out.empty()) r.Fail(R::kProtocolError, "acknowledgement without reason codes");
}

absl::StatusOr<Connect> ReadConnect(ByteReader& r) {
  Connect c;
  std::string_view protocol = r.Binary();
  uint8_t level = r.U8();
  if (!r.ok()) return r.status();
  // 3.1 ("MQIsdp", level 3) has 3.1.1's layout and is decoded as such; mosquitto and EMQX
  // accept it too.
  bool known = (protocol == "MQTT" && (level == 4 || level == 5)) ||
               (protocol == "MQIsdp" && level == 3);
  if (!known) {
    return CodecError(R::kUnsupportedProtocolVersion, "unsupported protocol name or level");
  }
  c.version = static_cast<Version>(level);
  bool v5 = c.version == Version::k5;
  uint8_t flags = r.U8();
  c.keep_alive_s = r.U16();
  if (flags & 0x01) r.Fail(R::kMalformedPacket, "reserved CONNECT flag set");
  c.clean_start = flags & 0x02;
  bool will = flags & 0x04;
  auto will_qos = static_cast<uint8_t>((flags >> 3) & 0x3);
  bool will_retain = flags & 0x20;
  bool has_password = flags & 0x40;
  bool has_username = flags & 0x80;
  if (will_qos == 3) r.Fail(R::kMalformedPacket, "will QoS 3");
  if (!will && (will_qos != 0 || will_retain)) {
    r.Fail(R::kMalformedPacket, "will QoS or retain set without a will");
  }
  if (!v5 && has_password && !has_username) {
    r.Fail(R::kMalformedPacket, "password without user name");  // 3.1.1 §3.1.2.9
  }
  if (v5) ReadProperties(r, {PacketType::kConnect}, c.properties);
  if (c.properties.authentication_data && !c.properties.authentication_method) {
    r.Fail(R::kProtocolError, "authentication data without a method");  // §3.1.2.11.10
  }
  c.client_id = r.Utf8();
  if (will) {
    Will w;
    w.qos = static_cast<QoS>(will_qos);
    w.retain = will_retain;
    if (v5) ReadProperties(r, {PacketType::kConnect, /*will=*/true}, w.properties);
    w.topic = r.Utf8();
    w.payload = r.Binary();
    if (r.ok() && !IsValidTopicName(w.topic)) {
      r.Fail(R::kTopicNameInvalid, "will topic is not a valid topic name");
    }
    c.will = std::move(w);
  }
  if (has_username) c.username = std::string(r.Utf8());
  if (has_password) c.password = std::string(r.Binary());
  ExpectEnd(r);
  if (!r.ok()) return r.status();
  return c;
}

absl::StatusOr<Packet> ReadConnack(ByteReader& r, Version v) {
  Connack c;
  uint8_t ack_flags = r.U8();
  if (ack_flags & 0xFE) r.Fail(R::kMalformedPacket, "reserved CONNACK flag set");
  c.session_present = ack_flags & 0x01;
  uint8_t code = r.U8();
  if (v == Version::k5) {
    c.reason = static_cast<ReasonCode>(code);
    if (!ReasonValid(PacketType::kConnack, c.reason)) {
      r.Fail(R::kProtocolError, "invalid reason code");
    }
    ReadProperties(r, {PacketType::kConnack}, c.properties);
  } else {
    if (code > 5) r.Fail(R::kMalformedPacket, "reserved CONNACK return code");  // 3.1.1 §3.2.2.3
    c.reason = FromConnackReturnCode311(code);
  }
  // 5.0 §3.2.2.1.1, 3.1.1 §3.2.2.2: a refused connection has no session.
  if (c.session_present && c.reason != R::kSuccess) {
    r.Fail(R::kProtocolError, "session present on a refused connection");
  }
  ExpectEnd(r);
  if (!r.ok()) return r.status();
  return c;
}

absl::StatusOr<Packet> ReadPublish(ByteReader& r, uint8_t flags, Version v) {
  Publish p;
  p.dup = flags & 0x08;
  p.qos = static_cast<QoS>((flags >> 1) & 0x3);
  p.retain = flags & 0x01;
  p.topic = r.Utf8();
  if (p.qos != QoS::k0) {
    p.packet_id = ReadPacketId(r);
  } else if (p.dup) {
    r.Fail(R::kMalformedPacket, "DUP set on a QoS 0 PUBLISH");  // §3.3.1.1
  }
  if (v == Version::k5) ReadProperties(r, {PacketType::kPublish}, p.properties);
  p.payload = r.Rest();
  if (!r.ok()) return r.status();
  // An empty topic is allowed only in 5.0, with a Topic Alias (§3.3.2.3.4).
  bool alias_only = p.topic.empty() && p.properties.topic_alias.has_value();
  if (!alias_only && !IsValidTopicName(p.topic)) {
    return CodecError(R::kTopicNameInvalid, "PUBLISH topic is empty or contains a wildcard");
  }
  return p;
}

template <typename AckT>
absl::StatusOr<Packet> ReadAck(ByteReader& r, Version v) {
  AckT a;
  a.packet_id = ReadPacketId(r);
  // 5.0 §3.4.2.1: the reason code and properties may be left out when there is nothing to say.
  if (v == Version::k5 && !r.empty()) {
    a.reason = static_cast<ReasonCode>(r.U8());
    if (!ReasonValid(AckT::type, a.reason)) r.Fail(R::kProtocolError, "invalid reason code");
    if (!r.empty()) ReadProperties(r, {AckT::type}, a.properties);
  }
  ExpectEnd(r);
  if (!r.ok()) return r.status();
  return a;
}

absl::StatusOr<Packet> ReadSubscribe(ByteReader& r, Version v) {
  Subscribe s;
  s.packet_id = ReadPacketId(r);
  if (v == Version::k5) ReadProperties(r, {PacketType::kSubscribe}, s.properties);
  while (r.ok() && !r.empty()) {
    TopicSubscription t;
    t.filter = r.Utf8();
    uint8_t options = r.U8();
    uint8_t reserved_mask = v == Version::k5 ? 0xC0 : 0xFC;
    if (options & reserved_mask) r.Fail(R::kMalformedPacket, "reserved subscription option set");
    if ((options & 0x3) == 3) r.Fail(R::kMalformedPacket, "subscription QoS 3");
    t.options.qos = static_cast<QoS>(options & 0x3);
    t.options.no_local = options & 0x04;
    t.options.retain_as_published = options & 0x08;
    t.options.retain_handling = (options >> 4) & 0x3;
    if (t.options.retain_handling == 3) r.Fail(R::kProtocolError, "retain handling 3");
    s.topics.push_back(std::move(t));
  }
  if (r.ok() && s.topics.empty()) r.Fail(R::kProtocolError, "SUBSCRIBE without topic filters");
  if (!r.ok()) return r.status();
  return s;
}

absl::StatusOr<Packet> ReadSuback(ByteReader& r, Version v) {
  Suback s;
  s.packet_id = ReadPacketId(r);
  if (v == Version::k5) ReadProperties(r, {PacketType::kSuback}, s.properties);
  ReadReasonList(r, PacketType::kSuback, v, s.reasons);
  if (!r.ok()) return r.status();
  return s;
}

absl::StatusOr<Packet> ReadUnsubscribe(ByteReader& r, Version v) {
  Unsubscribe u;
  u.packet_id = ReadPacketId(r);
  if (v == Version::k5) ReadProperties(r, {PacketType::kUnsubscribe}, u.properties);
  while (r.ok() && !r.empty()) u.filters.emplace_back(r.Utf8());
  if (r.ok() && u.filters.empty()) r.Fail(R::kProtocolError, "UNSUBSCRIBE without topic filters");
  if (!r.ok()) return r.status();
  return u;
}

absl::StatusOr<Packet> ReadUnsuback(ByteReader& r, Version v) {
  Unsuback u;
  u.packet_id = ReadPacketId(r);
  if (v == Version::k5) {
    ReadProperties(r, {PacketType::kUnsuback}, u.properties);
    ReadReasonList(r, PacketType::kUnsuback, v, u.reasons);
  }
  ExpectEnd(r);
  if (!r.ok()) return r.status();
  return u;
}

// DISCONNECT and AUTH: an optional reason code and optional properties (§3.14.2, §3.15.2).
template <typename T>
absl::StatusOr<Packet> ReadReasonAndProperties(ByteReader& r, Version v, PacketType type) {
  T t;
  if (v == Version::k5 && !r.empty()) {
    t.reason = static_cast<ReasonCode>(r.U8());
    if (!ReasonValid(type, t.reason)) r.Fail(R::kProtocolError, "invalid reason code");
    if (!r.empty()) ReadProperties(r, {type}, t.properties);
  }
  ExpectEnd(r);
  if (!r.ok()) return r.status();
  return t;
}

template <typename T>
absl::StatusOr<Packet> ReadEmpty(ByteReader& r) {
  ExpectEnd(r);
  if (!r.ok()) return r.status();
  return T{};
}

}  // namespace

absl::StatusOr<std::optional<Frame>> ParseFrame(std::string_view data, uint32_t max_packet_bytes) {
  if (data.empty()) return std::nullopt;
  Frame f;
  f.header = static_cast<uint8_t>(data[0]);
  if (f.type() == static_cast<PacketType>(0)) {
    return CodecError(R::kMalformedPacket, "reserved packet type 0");
  }
  if (!FlagsValid(f.type(), f.flags())) {
    return CodecError(R::kMalformedPacket, "fixed header flags invalid for the packet type");
  }
  uint32_t remaining = 0;
  size_t i = 1;
  for (;; ++i) {
    if (i > 4) return CodecError(R::kMalformedPacket, "remaining length longer than four bytes");
    if (i >= data.size()) return std::nullopt;
    auto byte = static_cast<uint8_t>(data[i]);
    remaining |= static_cast<uint32_t>(byte & 0x7F) << (7 * (i - 1));
    if ((byte & 0x80) == 0) {
      if (i > 1 && byte == 0) {
        return CodecError(R::kMalformedPacket, "remaining length not minimally encoded");
      }
      break;
    }
  }
  size_t header_size = i + 1;
  f.size = header_size + remaining;
  if (f.size > max_packet_bytes) {
    return CodecError(R::kPacketTooLarge, "packet larger than the maximum packet size");
  }
  if (data.size() < f.size) return std::nullopt;
  f.body = data.substr(header_size, remaining);
  return f;
}

absl::StatusOr<Packet> DecodePacket(const Frame& frame, Version v) {
  if (CarriesQos1Flags(frame.type()) && (frame.flags() & kDup) && v != Version::k31) {
    return CodecError(R::kMalformedPacket, "fixed header flags invalid for the packet type");
  }
  ByteReader r(frame.body);
  switch (frame.type()) {
    case PacketType::kConnect: {
      absl::StatusOr<Connect> c = ReadConnect(r);
      if (!c.ok()) return c.status();
      return std::move(*c);
    }
    case PacketType::kConnack: return ReadConnack(r, v);
    case PacketType::kPublish: return ReadPublish(r, frame.flags(), v);
    case PacketType::kPuback: return ReadAck<Puback>(r, v);
    case PacketType::kPubrec: return ReadAck<Pubrec>(r, v);
    case PacketType::kPubrel: return ReadAck<Pubrel>(r, v);
    case PacketType::kPubcomp: return ReadAck<Pubcomp>(r, v);
    case PacketType::kSubscribe: return ReadSubscribe(r, v);
    case PacketType::kSuback: return ReadSuback(r, v);
    case PacketType::kUnsubscribe: return ReadUnsubscribe(r, v);
    case PacketType::kUnsuback: return ReadUnsuback(r, v);
    case PacketType::kPingreq: return ReadEmpty<Pingreq>(r);
    case PacketType::kPingresp: return ReadEmpty<Pingresp>(r);
    case PacketType::kDisconnect:
      return ReadReasonAndProperties<Disconnect>(r, v, PacketType::kDisconnect);
    case PacketType::kAuth:
      if (v != Version::k5) return CodecError(R::kMalformedPacket, "AUTH in MQTT 3.1.1");
      return ReadReasonAndProperties<Auth>(r, v, PacketType::kAuth);
  }
  return CodecError(R::kMalformedPacket, "reserved packet type");
}

absl::StatusOr<Connect> DecodeConnect(const Frame& frame) {
  if (frame.type() != PacketType::kConnect) {
    return CodecError(R::kProtocolError, "first packet is not CONNECT");
  }
  ByteReader r(frame.body);
  return ReadConnect(r);
}

absl::StatusOr<std::optional<Packet>> StreamDecoder::Next(Version version) {
  if (!error_.ok()) return error_;
  std::string_view pending(buffer_);
  pending.remove_prefix(consumed_);
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(pending, max_packet_bytes_);
  if (frame.ok() && !frame->has_value()) {
    buffer_.erase(0, consumed_);  // compact while waiting, so the buffer stays one packet long
    consumed_ = 0;
    return std::nullopt;
  }
  absl::StatusOr<Packet> packet =
      frame.ok() ? DecodePacket(**frame, version) : absl::StatusOr<Packet>(frame.status());
  if (!packet.ok()) {
    error_ = packet.status();
    return error_;
  }
  consumed_ += (*frame)->size;
  return std::move(*packet);
}

}  // namespace mqtt
