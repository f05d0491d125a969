// Message construction: the per-hop properties are taken out once, here.
#include "backend/message.h"

#include <algorithm>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace backend {

MessagePtr MakeMessage(std::string topic, std::string payload, mqtt::QoS qos, bool retain,
                       mqtt::Properties properties, uint64_t publisher_session,
                       Clock::time_point now) {
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
  return m;
}

std::string EncodeMessage(const Message& m, Clock::time_point now) {
  mqtt::Publish p{.topic = m.topic,
                  .payload = m.payload,
                  .qos = m.qos,
                  .retain = m.retain,
                  .packet_id = 1,  // required at QoS 1 and 2; meaningless here
                  .properties = m.properties ? *m.properties : mqtt::Properties{}};
  if (m.expires_at) {
    auto left = std::chrono::ceil<std::chrono::seconds>(*m.expires_at - now).count();
    p.properties.message_expiry_interval = static_cast<uint32_t>(std::max<int64_t>(left, 1));
  }
  std::string bytes;
  mqtt::Encode(p, mqtt::Version::k5, bytes);
  return bytes;
}

absl::StatusOr<MessagePtr> DecodeMessage(std::string_view bytes, Clock::time_point now) {
  absl::StatusOr<std::optional<mqtt::Frame>> frame = mqtt::ParseFrame(bytes, mqtt::kMaxPacketBytes);
  if (!frame.ok()) return frame.status();
  if (!frame->has_value() || (**frame).size != bytes.size()) {
    return absl::DataLossError("stored message: not one whole packet");
  }
  absl::StatusOr<mqtt::Packet> packet = mqtt::DecodePacket(**frame, mqtt::Version::k5);
  if (!packet.ok()) return packet.status();
  auto* p = std::get_if<mqtt::Publish>(&*packet);
  if (p == nullptr) return absl::DataLossError("stored message: not a PUBLISH");
  return MakeMessage(std::move(p->topic), std::move(p->payload), p->qos, p->retain,
                     std::move(p->properties), 0, now);
}

}  // namespace backend
