// Session snapshot encoding on the codec's ByteWriter and ByteReader.
#include "backend/session_codec.h"

#include <algorithm>
#include <cstdint>

#include "mqtt/property_codec.h"
#include "mqtt/wire.h"

namespace backend {
namespace {

// 3 added the pending will; 4 has messages with their expiry on the cluster's clock and may have
// subscription changes appended (a build of version 3 cannot read either, so it refuses 4 as an
// unknown version). Versions 2 (without the will) and 3 are still read.
constexpr uint8_t kVersion = 4;
constexpr uint8_t kVersionWithWill = 3;
constexpr uint8_t kVersionWithoutWill = 2;

// Tags of the subscription changes appended to a record.
constexpr uint8_t kSubscribed = 1;
constexpr uint8_t kUnsubscribed = 2;

void WriteSubscription(mqtt::ByteWriter& w, const std::string& filter,
                       const SubscriptionRecord& record) {
  w.Binary(filter);
  const mqtt::SubscriptionOptions& o = record.options;
  w.U8(static_cast<uint8_t>(static_cast<uint8_t>(o.qos) | (o.no_local ? 0x04 : 0) |
                            (o.retain_as_published ? 0x08 : 0) | (o.retain_handling << 4)));
  w.U32(record.subscription_id);
}

void ReadSubscription(mqtt::ByteReader& r, Subscriptions& into) {
  std::string filter(r.Binary());
  uint8_t o = r.U8();
  SubscriptionRecord record;
  record.options = {.qos = static_cast<mqtt::QoS>(o & 3),
                    .no_local = (o & 0x04) != 0,
                    .retain_as_published = (o & 0x08) != 0,
                    .retain_handling = static_cast<uint8_t>((o >> 4) & 3)};
  record.subscription_id = r.U32();
  into.insert_or_assign(std::move(filter), record);
}

void WriteDelivery(mqtt::ByteWriter& w, const Delivery& d, Clock::time_point now) {
  w.U8(static_cast<uint8_t>(d.qos));
  w.U8(d.retain ? 1 : 0);
  w.U32(static_cast<uint32_t>(d.subscription_ids.size()));
  for (uint32_t id : d.subscription_ids)
    w.U32(id);
  std::string bytes = EncodeMessage(*d.message, now);
  w.U32(static_cast<uint32_t>(bytes.size()));
  w.Raw(bytes);
}

bool ReadDelivery(mqtt::ByteReader& r, Delivery& d, Clock::time_point now) {
  d.qos = static_cast<mqtt::QoS>(r.U8() & 3);
  d.retain = r.U8() != 0;
  uint32_t ids = r.U32();
  for (uint32_t i = 0; i < ids && r.ok(); ++i)
    d.subscription_ids.push_back(r.U32());
  std::string_view bytes = r.Bytes(r.U32());
  if (!r.ok()) return false;
  absl::StatusOr<MessagePtr> message = DecodeMessage(bytes, now);
  if (!message.ok()) return false;
  d.message = std::move(*message);
  return true;
}

void WriteWill(mqtt::ByteWriter& w, const SessionSnapshot::PendingWill& p) {
  // Seconds, as the Will Delay Interval is (whatever its length), then milliseconds.
  int64_t ms = std::max<int64_t>(p.delay.count(), 0);
  w.U32(static_cast<uint32_t>(std::min<int64_t>(ms / 1000, UINT32_MAX)));
  w.U16(static_cast<uint16_t>(ms % 1000));
  w.Binary(p.will.topic);
  w.Binary(p.will.payload);
  w.U8(static_cast<uint8_t>(static_cast<uint8_t>(p.will.qos) | (p.will.retain ? 0x04 : 0)));
  w.VarInt(static_cast<uint32_t>(mqtt::PropertiesBodySize(p.will.properties)));
  mqtt::WritePropertiesBody(w, p.will.properties);
}

SessionSnapshot::PendingWill ReadWill(mqtt::ByteReader& r) {
  SessionSnapshot::PendingWill p;
  p.delay = std::chrono::seconds(r.U32());
  uint16_t ms = r.U16();
  if (ms >= 1000) r.Fail(mqtt::ReasonCode::kMalformedPacket, "will delay");
  p.delay += std::chrono::milliseconds(ms);
  p.will.topic = std::string(r.Binary());
  p.will.payload = std::string(r.Binary());
  uint8_t flags = r.U8();
  if ((flags & 3) == 3 || (flags & ~0x07) != 0) {
    r.Fail(mqtt::ReasonCode::kMalformedPacket, "will flags");
  }
  p.will.qos = static_cast<mqtt::QoS>(flags & 3);
  p.will.retain = (flags & 0x04) != 0;
  mqtt::ReadProperties(r, {.packet = mqtt::PacketType::kConnect, .will = true}, p.will.properties);
  return p;
}

}  // namespace

std::string EncodeSnapshot(const SessionSnapshot& s, Clock::time_point now) {
  std::string out;
  mqtt::ByteWriter w(out);
  w.U8(kVersion);
  w.U32(s.expiry_s);
  w.U32(static_cast<uint32_t>(s.subscriptions.size()));
  for (const auto& [filter, record] : s.subscriptions)
    WriteSubscription(w, filter, record);
  w.U32(static_cast<uint32_t>(s.inflight.size()));
  for (const Outgoing& o : s.inflight) {
    bool pubrel = o.kind == Outgoing::Kind::kPubrel;
    w.U8(pubrel ? 1 : 0);
    w.U16(o.packet_id);
    if (!pubrel) WriteDelivery(w, o.delivery, now);
  }
  w.U32(static_cast<uint32_t>(s.queued.size()));
  for (const Delivery& d : s.queued)
    WriteDelivery(w, d, now);
  w.U32(static_cast<uint32_t>(s.inbound_qos2.size()));
  for (uint16_t id : s.inbound_qos2)
    w.U16(id);
  w.U8(s.will ? 1 : 0);
  if (s.will) WriteWill(w, *s.will);
  return out;
}

absl::StatusOr<SessionSnapshot> DecodeSnapshot(std::string_view bytes, Clock::time_point now) {
  mqtt::ByteReader r(bytes);
  auto bad = [] { return absl::DataLossError("session snapshot: malformed"); };
  uint8_t version = r.U8();
  if (version != kVersion && version != kVersionWithWill && version != kVersionWithoutWill) {
    return absl::DataLossError("session snapshot: unknown version");
  }
  SessionSnapshot s;
  s.expiry_s = r.U32();
  uint32_t subscriptions = r.U32();
  for (uint32_t i = 0; i < subscriptions && r.ok(); ++i)
    ReadSubscription(r, s.subscriptions);
  uint32_t inflight = r.U32();
  for (uint32_t i = 0; i < inflight && r.ok(); ++i) {
    Outgoing o;
    bool pubrel = r.U8() == 1;
    o.packet_id = r.U16();
    if (pubrel) {
      o.kind = Outgoing::Kind::kPubrel;
    } else {
      o.dup = true;
      if (!ReadDelivery(r, o.delivery, now)) return bad();
    }
    s.inflight.push_back(std::move(o));
  }
  uint32_t queued = r.U32();
  for (uint32_t i = 0; i < queued && r.ok(); ++i) {
    Delivery d;
    if (!ReadDelivery(r, d, now)) return bad();
    s.queued.push_back(std::move(d));
  }
  uint32_t qos2 = r.U32();
  for (uint32_t i = 0; i < qos2 && r.ok(); ++i)
    s.inbound_qos2.push_back(r.U16());
  if (version != kVersionWithoutWill) {
    uint8_t will = r.U8();
    if (will > 1) return bad();
    if (will == 1) s.will = ReadWill(r);
  }
  while (r.ok() && !r.empty()) {
    uint8_t tag = r.U8();
    if (tag == kSubscribed) {
      ReadSubscription(r, s.subscriptions);
    } else if (tag == kUnsubscribed) {
      s.subscriptions.erase(std::string(r.Binary()));
    } else {
      return bad();
    }
  }
  if (!r.ok()) return bad();
  return s;
}

std::string EncodeSubscriptionChanges(const Subscriptions& subscriptions,
                                      const std::vector<std::string>& filters) {
  std::string out;
  mqtt::ByteWriter w(out);
  for (const std::string& filter : filters) {
    if (auto it = subscriptions.find(filter); it != subscriptions.end()) {
      w.U8(kSubscribed);
      WriteSubscription(w, filter, it->second);
    } else {
      w.U8(kUnsubscribed);
      w.Binary(filter);
    }
  }
  return out;
}

std::string EncodeDelivery(const Delivery& delivery, Clock::time_point now) {
  std::string out;
  mqtt::ByteWriter w(out);
  WriteDelivery(w, delivery, now);
  return out;
}

absl::StatusOr<Delivery> DecodeDelivery(std::string_view bytes, Clock::time_point now) {
  mqtt::ByteReader r(bytes);
  Delivery d;
  if (!ReadDelivery(r, d, now) || !r.empty()) {
    return absl::DataLossError("queued delivery: malformed");
  }
  return d;
}

}  // namespace backend
