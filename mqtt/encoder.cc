// The packet encoder. Every packet is sized before it is written, because the Remaining Length
// comes first; the sizes and the writes are computed by the same few helpers so they agree.
#include "mqtt/encoder.h"

#include <cassert>

#include "mqtt/property_codec.h"
#include "mqtt/wire.h"

namespace mqtt {
namespace {

uint8_t Header(PacketType type, uint8_t flags = 0) {
  return static_cast<uint8_t>(static_cast<uint8_t>(type) << 4 | flags);
}

void WriteFixedHeader(ByteWriter& w, uint8_t header, size_t remaining) {
  assert(remaining <= kMaxVarInt);
  w.U8(header);
  w.VarInt(static_cast<uint32_t>(remaining));
}

// A property section with its length prefix, sized once and written once.
struct PropertySection {
  explicit PropertySection(const Properties& p) : props(p), body(PropertiesBodySize(p)) {}
  size_t size() const { return VarIntSize(static_cast<uint32_t>(body)) + body; }
  void Write(ByteWriter& w) const {
    w.VarInt(static_cast<uint32_t>(body));
    WritePropertiesBody(w, props);
  }
  const Properties& props;
  size_t body;
};

void EncodeConnect(const Connect& c, std::string& out) {
  bool v5 = c.version == Version::k5;
  std::optional<PropertySection> props, will_props;
  std::string_view name = c.version == Version::k31 ? "MQIsdp" : "MQTT";
  // protocol name, level, flags, keep alive, client id
  size_t size = 2 + name.size() + 1 + 1 + 2 + 2 + c.client_id.size();
  if (v5) {
    props.emplace(c.properties);
    size += props->size();
  }
  if (c.will) {
    if (v5) {
      will_props.emplace(c.will->properties);
      size += will_props->size();
    }
    size += 4 + c.will->topic.size() + c.will->payload.size();
  }
  if (c.username) size += 2 + c.username->size();
  if (c.password) size += 2 + c.password->size();

  uint8_t flags = c.clean_start ? 0x02 : 0;
  if (c.will) {
    flags |= 0x04 | static_cast<uint8_t>(c.will->qos) << 3 | (c.will->retain ? 0x20 : 0);
  }
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;

  ByteWriter w(out);
  WriteFixedHeader(w, Header(PacketType::kConnect), size);
  w.Binary(name);
  w.U8(static_cast<uint8_t>(c.version));
  w.U8(flags);
  w.U16(c.keep_alive_s);
  if (props) props->Write(w);
  w.Binary(c.client_id);
  if (c.will) {
    if (will_props) will_props->Write(w);
    w.Binary(c.will->topic);
    w.Binary(c.will->payload);
  }
  if (c.username) w.Binary(*c.username);
  if (c.password) w.Binary(*c.password);
}

void EncodeConnack(const Connack& c, Version v, std::string& out) {
  ByteWriter w(out);
  if (v != Version::k5) {
    WriteFixedHeader(w, Header(PacketType::kConnack), 2);
    w.U8(c.session_present && v == Version::k311 ? 1 : 0);  // 3.1: a reserved byte
    w.U8(ToConnackReturnCode311(c.reason));
    return;
  }
  PropertySection props(c.properties);
  WriteFixedHeader(w, Header(PacketType::kConnack), 2 + props.size());
  w.U8(c.session_present ? 1 : 0);
  w.U8(static_cast<uint8_t>(c.reason));
  props.Write(w);
}

template <PacketType kType>
void EncodeAck(const Ack<kType>& a, Version v, std::string& out) {
  ByteWriter w(out);
  uint8_t header = Header(kType, kType == PacketType::kPubrel ? 0x2 : 0);
  bool bare = v != Version::k5 || (a.reason == ReasonCode::kSuccess && a.properties.empty());
  if (bare) {  // 5.0 §3.4.2.1: a success without properties may be sent as in 3.1.1
    WriteFixedHeader(w, header, 2);
    w.U16(a.packet_id);
    return;
  }
  PropertySection props(a.properties);
  WriteFixedHeader(w, header, 3 + props.size());
  w.U16(a.packet_id);
  w.U8(static_cast<uint8_t>(a.reason));
  props.Write(w);
}

uint8_t OptionsByte(const SubscriptionOptions& o, Version v) {
  uint8_t b = static_cast<uint8_t>(o.qos);
  if (v == Version::k5) {
    b |= (o.no_local ? 0x04 : 0) | (o.retain_as_published ? 0x08 : 0) |
         static_cast<uint8_t>(o.retain_handling << 4);
  }
  return b;
}

void EncodeSubscribe(const Subscribe& s, Version v, std::string& out) {
  std::optional<PropertySection> props;
  size_t size = 2;
  if (v == Version::k5) {
    props.emplace(s.properties);
    size += props->size();
  }
  for (const auto& t : s.topics)
    size += 3 + t.filter.size();
  ByteWriter w(out);
  WriteFixedHeader(w, Header(PacketType::kSubscribe, 0x2), size);
  w.U16(s.packet_id);
  if (props) props->Write(w);
  for (const auto& t : s.topics) {
    w.Binary(t.filter);
    w.U8(OptionsByte(t.options, v));
  }
}

// SUBACK and UNSUBACK: packet identifier, properties, one reason code per topic.
void EncodeReasonList(PacketType type, uint16_t packet_id, const std::vector<ReasonCode>& reasons,
                      const Properties& properties, Version v, std::string& out) {
  bool v5 = v == Version::k5;
  // 3.1.1 UNSUBACK carries no reason codes; 3.1.1 SUBACK fails with 0x80 (§3.9.3).
  bool with_reasons = v5 || type == PacketType::kSuback;
  std::optional<PropertySection> props;
  size_t size = 2 + (with_reasons ? reasons.size() : 0);
  if (v5) {
    props.emplace(properties);
    size += props->size();
  }
  ByteWriter w(out);
  WriteFixedHeader(w, Header(type), size);
  w.U16(packet_id);
  if (props) props->Write(w);
  if (!with_reasons) return;
  for (ReasonCode r : reasons) {
    w.U8(v5 || !IsError(r) ? static_cast<uint8_t>(r) : 0x80);
  }
}

void EncodeUnsubscribe(const Unsubscribe& u, Version v, std::string& out) {
  std::optional<PropertySection> props;
  size_t size = 2;
  if (v == Version::k5) {
    props.emplace(u.properties);
    size += props->size();
  }
  for (const auto& f : u.filters)
    size += 2 + f.size();
  ByteWriter w(out);
  WriteFixedHeader(w, Header(PacketType::kUnsubscribe, 0x2), size);
  w.U16(u.packet_id);
  if (props) props->Write(w);
  for (const auto& f : u.filters)
    w.Binary(f);
}

// DISCONNECT and AUTH: nothing in 3.1.1; in 5.0 the reason code and properties, both left out
// when they say nothing (§3.14.2.1).
void EncodeReasonAndProperties(PacketType type, ReasonCode reason, const Properties& properties,
                               Version v, std::string& out) {
  ByteWriter w(out);
  if (v != Version::k5 || (reason == ReasonCode::kSuccess && properties.empty())) {
    WriteFixedHeader(w, Header(type), 0);
    return;
  }
  PropertySection props(properties);
  WriteFixedHeader(w, Header(type), 1 + props.size());
  w.U8(static_cast<uint8_t>(reason));
  props.Write(w);
}

}  // namespace

namespace {

// The sizes of a PUBLISH, computed once for sizing and writing alike.
struct PublishLayout {
  size_t props_body = 0;  // 5.0 only
  size_t remaining = 0;   // Remaining Length, payload included
  size_t total() const { return 1 + VarIntSize(static_cast<uint32_t>(remaining)) + remaining; }
};

PublishLayout Layout(const PublishHeader& h, size_t payload_size, Version v) {
  PublishLayout l;
  size_t variable = 2 + h.topic.size() + (h.qos != QoS::k0 ? 2 : 0);
  if (v == Version::k5) {
    if (h.properties != nullptr) l.props_body += PropertiesBodySize(*h.properties);
    for (uint32_t id : h.subscription_identifiers) {
      l.props_body += PropertySize(PropertyId::kSubscriptionIdentifier, id);
    }
    if (h.topic_alias) l.props_body += PropertySize(PropertyId::kTopicAlias, *h.topic_alias);
    if (h.message_expiry_interval) {
      l.props_body += PropertySize(PropertyId::kMessageExpiryInterval, *h.message_expiry_interval);
    }
    for (const auto& [key, value] : h.extra_user_properties) {
      l.props_body += UserPropertySize(key, value);
    }
    variable += VarIntSize(static_cast<uint32_t>(l.props_body)) + l.props_body;
  }
  l.remaining = variable + payload_size;
  return l;
}

}  // namespace

size_t PublishPacketSize(const PublishHeader& header, size_t payload_size, Version version) {
  return Layout(header, payload_size, version).total();
}

size_t EncodePublishHeader(const PublishHeader& h, size_t payload_size, Version v,
                           std::string& out) {
  PublishLayout l = Layout(h, payload_size, v);
  uint8_t flags = static_cast<uint8_t>((h.dup ? 0x08 : 0) | static_cast<uint8_t>(h.qos) << 1 |
                                       (h.retain ? 0x01 : 0));
  ByteWriter w(out);
  WriteFixedHeader(w, Header(PacketType::kPublish, flags), l.remaining);
  w.Binary(h.topic);
  if (h.qos != QoS::k0) w.U16(h.packet_id);
  if (v == Version::k5) {
    w.VarInt(static_cast<uint32_t>(l.props_body));
    if (h.properties != nullptr) WritePropertiesBody(w, *h.properties);
    for (uint32_t id : h.subscription_identifiers) {
      WriteProperty(w, PropertyId::kSubscriptionIdentifier, id);
    }
    if (h.topic_alias) WriteProperty(w, PropertyId::kTopicAlias, *h.topic_alias);
    if (h.message_expiry_interval) {
      WriteProperty(w, PropertyId::kMessageExpiryInterval, *h.message_expiry_interval);
    }
    for (const auto& [key, value] : h.extra_user_properties)
      WriteUserProperty(w, key, value);
  }
  return l.total();
}

void Encode(const Packet& packet, Version v, std::string& out) {
  struct Visitor {
    Version v;
    std::string& out;
    void operator()(const Connect& c) { EncodeConnect(c, out); }
    void operator()(const Connack& c) { EncodeConnack(c, v, out); }
    void operator()(const Publish& p) {
      EncodePublishHeader({.topic = p.topic,
                           .qos = p.qos,
                           .retain = p.retain,
                           .dup = p.dup,
                           .packet_id = p.packet_id,
                           .properties = &p.properties},
                          p.payload.size(), v, out);
      out.append(p.payload);
    }
    void operator()(const Puback& a) { EncodeAck(a, v, out); }
    void operator()(const Pubrec& a) { EncodeAck(a, v, out); }
    void operator()(const Pubrel& a) { EncodeAck(a, v, out); }
    void operator()(const Pubcomp& a) { EncodeAck(a, v, out); }
    void operator()(const Subscribe& s) { EncodeSubscribe(s, v, out); }
    void operator()(const Suback& s) {
      EncodeReasonList(PacketType::kSuback, s.packet_id, s.reasons, s.properties, v, out);
    }
    void operator()(const Unsubscribe& u) { EncodeUnsubscribe(u, v, out); }
    void operator()(const Unsuback& u) {
      EncodeReasonList(PacketType::kUnsuback, u.packet_id, u.reasons, u.properties, v, out);
    }
    void operator()(const Pingreq&) { out.append({'\xC0', '\x00'}); }
    void operator()(const Pingresp&) { out.append({'\xD0', '\x00'}); }
    void operator()(const Disconnect& d) {
      EncodeReasonAndProperties(PacketType::kDisconnect, d.reason, d.properties, v, out);
    }
    void operator()(const Auth& a) {
      EncodeReasonAndProperties(PacketType::kAuth, a.reason, a.properties, v, out);
    }
  };
  std::visit(Visitor{v, out}, packet);
}

}  // namespace mqtt
