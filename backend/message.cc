// Message construction: the per-hop properties are taken out once, here.
#include "backend/message.h"

namespace backend {

MessagePtr MakeMessage(std::string topic, std::string payload, mqtt::QoS qos, bool retain,
                       mqtt::Properties properties, uint64_t publisher_session,
                       Clock::time_point now) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = qos;
  m->retain = retain;
  if (properties.message_expiry_interval) {
    m->expires_at = now + std::chrono::seconds(*properties.message_expiry_interval);
  }
  properties.message_expiry_interval.reset();
  properties.topic_alias.reset();
  properties.subscription_identifiers.clear();
  properties.will_delay_interval.reset();  // a will's own, not the message's
  m->properties = std::move(properties);
  m->publisher_session = publisher_session;
  return m;
}

}  // namespace backend
