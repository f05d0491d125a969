// Message construction: the per-hop properties are taken out once, here.
#include "backend/message.h"

#include <algorithm>
#include <atomic>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace backend {
namespace {

// MakeMessage, not yet const.
std::shared_ptr<Message> NewMessage(std::string topic, std::string payload, mqtt::QoS qos,
                                    bool retain, mqtt::Properties properties,
                                    uint64_t publisher_session, Clock::time_point now) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = qos;
  m->retain = retain;
  // 0 is read as no expiry, as mosquitto does: some client libraries send it for "unset", and
  // taken literally the message would be acknowledged and then dropped before any delivery.
  if (properties.message_expiry_interval.value_or(0) > 0) {
    m->expires_at = now + std::chrono::seconds(*properties.message_expiry_interval);
  }
  properties.message_expiry_interval.reset();
  properties.topic_alias.reset();
  properties.subscription_identifiers.clear();
  properties.will_delay_interval.reset();  // a will's own, not the message's
  if (!properties.empty()) {
    m->properties = std::make_unique<const mqtt::Properties>(std::move(properties));
  }
  m->publisher_session = publisher_session;
  m->received_at = now;
  return m;
}

// The marker of the format with the wall-clock expiry (a PUBLISH starts with 0x3X).
constexpr char kWallClockFormat = 0x01;
constexpr size_t kHeaderBytes = 9;

// The cluster's clock less this host's wall clock.
std::atomic<int64_t> wall_clock_offset_ms{0};

}  // namespace

int64_t HostClockMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t WallClockMillis() {
  return HostClockMillis() + wall_clock_offset_ms.load(std::memory_order_relaxed);
}

void SetWallClockOffset(std::chrono::milliseconds offset) {
  wall_clock_offset_ms.store(offset.count(), std::memory_order_relaxed);
}

MessagePtr MakeMessage(std::string topic, std::string payload, mqtt::QoS qos, bool retain,
                       mqtt::Properties properties, uint64_t publisher_session,
                       Clock::time_point now) {
  return NewMessage(std::move(topic), std::move(payload), qos, retain, std::move(properties),
                    publisher_session, now);
}

std::string EncodeMessage(const Message& m, Clock::time_point now) {
  mqtt::Publish p{.topic = m.topic,
                  .payload = m.payload,
                  .qos = m.qos,
                  .retain = m.retain,
                  .packet_id = 1,  // required at QoS 1 and 2; meaningless here
                  .properties = m.properties ? *m.properties : mqtt::Properties{}};
  uint64_t expires_ms = 0;
  if (m.expires_at) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*m.expires_at - now);
    expires_ms = static_cast<uint64_t>(std::max<int64_t>(WallClockMillis() + left.count(), 1));
    auto seconds = std::chrono::ceil<std::chrono::seconds>(left).count();
    p.properties.message_expiry_interval = static_cast<uint32_t>(std::max<int64_t>(seconds, 1));
  }
  std::string bytes(1, kWallClockFormat);
  for (int shift = 56; shift >= 0; shift -= 8)
    bytes.push_back(static_cast<char>(expires_ms >> shift));
  mqtt::Encode(p, mqtt::Version::k5, bytes);
  return bytes;
}

bool IsIntervalFormat(std::string_view bytes) {
  return bytes.empty() || bytes[0] != kWallClockFormat;
}

absl::StatusOr<MessagePtr> DecodeMessage(std::string_view bytes, Clock::time_point now) {
  std::optional<uint64_t> expires_ms;  // absent in the format before
  if (!IsIntervalFormat(bytes)) {
    if (bytes.size() < kHeaderBytes) return absl::DataLossError("stored message: cut short");
    expires_ms = 0;
    for (size_t i = 1; i < kHeaderBytes; ++i)
      *expires_ms = *expires_ms << 8 | static_cast<uint8_t>(bytes[i]);
    bytes.remove_prefix(kHeaderBytes);
  }
  absl::StatusOr<std::optional<mqtt::Frame>> frame = mqtt::ParseFrame(bytes, mqtt::kMaxPacketBytes);
  if (!frame.ok()) return frame.status();
  if (!frame->has_value() || (**frame).size != bytes.size()) {
    return absl::DataLossError("stored message: not one whole packet");
  }
  absl::StatusOr<mqtt::Packet> packet = mqtt::DecodePacket(**frame, mqtt::Version::k5);
  if (!packet.ok()) return packet.status();
  auto* p = std::get_if<mqtt::Publish>(&*packet);
  if (p == nullptr) return absl::DataLossError("stored message: not a PUBLISH");
  if (expires_ms) p->properties.message_expiry_interval.reset();
  std::shared_ptr<Message> m = NewMessage(std::move(p->topic), std::move(p->payload), p->qos,
                                          p->retain, std::move(p->properties), 0, now);
  if (expires_ms.value_or(0) != 0) {
    auto left = std::chrono::milliseconds(static_cast<int64_t>(*expires_ms) - WallClockMillis());
    m->expires_at = now + left;
  }
  return m;
}

}  // namespace backend
