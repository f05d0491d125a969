// Tests of backend/session_codec.cc and of Session::Snapshot/Restore: a session handed from one
// node to another arrives whole (subscriptions, in-flight flows with their packet identifiers,
// the queue, inbound QoS 2 state), with message expiry counted down, and bad bytes are refused.
#include "backend/session_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace backend {
namespace {

using ::testing::ElementsAre;
using Kind = Outgoing::Kind;

const Clock::time_point kNow = Clock::time_point() + std::chrono::hours(1);

Delivery Deliver(std::string topic, mqtt::QoS qos, std::optional<Clock::time_point> expires = {}) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = std::string("pay\0load", 8);
  m->qos = qos;
  mqtt::Properties properties;
  properties.user_properties.emplace_back("k", "v");
  properties.content_type = "text/plain";
  m->properties = std::make_unique<const mqtt::Properties>(std::move(properties));
  m->expires_at = expires;
  return Delivery{.message = std::move(m), .qos = qos, .retain = true, .subscription_ids = {7, 9}};
}

// A session with something in every part: two subscriptions, a QoS 1 and a QoS 2 message in
// flight (the QoS 2 one past PUBREC), two queued, one inbound QoS 2 identifier.
Session Busy() {
  Session s("client", 1, 100);
  s.subscriptions()["a/#"] = {.options = {.qos = mqtt::QoS::k2, .retain_as_published = true},
                              .subscription_id = 7};
  s.subscriptions()["$share/g/b"] = {.options = {.qos = mqtt::QoS::k1, .retain_handling = 2}};
  s.set_send_window(2);
  s.Enqueue(Deliver("a/1", mqtt::QoS::k1), true);
  s.Enqueue(Deliver("a/2", mqtt::QoS::k2), true);
  s.Enqueue(Deliver("a/3", mqtt::QoS::k1, kNow + std::chrono::seconds(30)), true);
  s.Enqueue(Deliver("a/4", mqtt::QoS::k2), true);
  EXPECT_TRUE(s.PopNext(kNow));
  std::optional<Outgoing> second = s.PopNext(kNow);
  EXPECT_EQ(s.OnPubrec(second->packet_id, mqtt::ReasonCode::kSuccess),
            Session::AckResult::kSendPubrel);
  EXPECT_TRUE(s.BeginInboundQos2(42));
  return s;
}

TEST(SessionCodec, RoundTripKeepsEveryPart) {
  Session original = Busy();
  std::string bytes = EncodeSnapshot(original.Snapshot(), kNow);
  absl::StatusOr<SessionSnapshot> decoded = DecodeSnapshot(bytes, kNow + std::chrono::seconds(10));
  ASSERT_TRUE(decoded.ok()) << decoded.status();

  Session restored("client", 2, 100);
  restored.Restore(std::move(*decoded));
  EXPECT_EQ(restored.subscriptions().size(), 2u);
  const SubscriptionRecord& a = restored.subscriptions().at("a/#");
  EXPECT_EQ(a.options.qos, mqtt::QoS::k2);
  EXPECT_TRUE(a.options.retain_as_published);
  EXPECT_EQ(a.subscription_id, 7u);
  EXPECT_EQ(restored.subscriptions().at("$share/g/b").options.retain_handling, 2);

  // The flows resume where they were: the QoS 1 PUBLISH again (DUP), then the PUBREL.
  std::vector<Outgoing> resends = restored.Resends();
  ASSERT_EQ(resends.size(), 2u);
  std::vector<Outgoing> before = original.Resends();
  EXPECT_EQ(resends[0].kind, Kind::kPublish);
  EXPECT_EQ(resends[0].packet_id, before[0].packet_id);
  EXPECT_TRUE(resends[0].dup);
  const Message& m = *resends[0].delivery.message;
  EXPECT_EQ(m.topic, "a/1");
  EXPECT_EQ(m.payload, std::string("pay\0load", 8));
  ASSERT_NE(m.properties, nullptr);
  EXPECT_EQ(m.properties->content_type, "text/plain");
  EXPECT_THAT(resends[0].delivery.subscription_ids, ElementsAre(7, 9));
  EXPECT_TRUE(resends[0].delivery.retain);
  EXPECT_EQ(resends[1].kind, Kind::kPubrel);
  EXPECT_EQ(resends[1].packet_id, before[1].packet_id);
  EXPECT_EQ(restored.OnPubcomp(before[1].packet_id), Session::AckResult::kDone);
  EXPECT_EQ(restored.OnPuback(before[0].packet_id), Session::AckResult::kDone);

  // The queue, in order; the expiring message has what it had left when encoded (30 s) less the
  // wall-clock time since (none here), from its decoding at kNow + 10 s.
  EXPECT_EQ(restored.queued(), 2u);
  std::optional<Outgoing> next = restored.PopNext(kNow + std::chrono::seconds(25));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->delivery.message->topic, "a/3");
  EXPECT_NE(next->packet_id, before[0].packet_id);  // new identifiers avoid those in flight
  EXPECT_NE(next->packet_id, before[1].packet_id);

  // The inbound QoS 2 identifier still waits for its PUBREL: a retransmission is no new message.
  EXPECT_FALSE(restored.BeginInboundQos2(42));
  EXPECT_TRUE(restored.ReleaseInboundQos2(42));
}

TEST(SessionCodec, ExpiredWhileHandedOver) {
  Session s("client", 1, 100);
  s.set_send_window(0);
  s.Enqueue(Deliver("t", mqtt::QoS::k1, kNow + std::chrono::seconds(5)), false);
  absl::StatusOr<SessionSnapshot> decoded =
      DecodeSnapshot(EncodeSnapshot(s.Snapshot(), kNow), kNow + std::chrono::seconds(1));
  ASSERT_TRUE(decoded.ok());
  Session restored("client", 2, 100);
  restored.Restore(std::move(*decoded));
  EXPECT_FALSE(restored.PopNext(kNow + std::chrono::seconds(7)));
  EXPECT_EQ(restored.expired_dropped(), 1u);
}

TEST(SessionCodec, KeepsTheExpiryInterval) {
  SessionSnapshot s;
  s.expiry_s = 0xFFFFFFFF;
  absl::StatusOr<SessionSnapshot> decoded = DecodeSnapshot(EncodeSnapshot(s, kNow), kNow);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->expiry_s, 0xFFFFFFFFu);
}

SessionSnapshot::PendingWill AWill() {
  SessionSnapshot::PendingWill p{.will = {.topic = "status/dev",
                                          .payload = std::string("gone\0", 5),
                                          .qos = mqtt::QoS::k1,
                                          .retain = true},
                                 .delay = std::chrono::milliseconds(12'345)};
  p.will.properties.will_delay_interval = 30;
  p.will.properties.message_expiry_interval = 600;
  p.will.properties.content_type = "text/plain";
  p.will.properties.user_properties = {{"k", "v"}};
  return p;
}

TEST(SessionCodec, KeepsAPendingWill) {
  SessionSnapshot s;
  s.will = AWill();
  absl::StatusOr<SessionSnapshot> decoded = DecodeSnapshot(EncodeSnapshot(s, kNow), kNow);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_TRUE(decoded->will);
  EXPECT_EQ(decoded->will->will, s.will->will);
  EXPECT_EQ(decoded->will->delay, std::chrono::milliseconds(12'345));
  // Without one, none comes back.
  decoded = DecodeSnapshot(EncodeSnapshot(SessionSnapshot{}, kNow), kNow);
  ASSERT_TRUE(decoded.ok());
  EXPECT_FALSE(decoded->will);
}

TEST(SessionCodec, RefusesABadWill) {
  SessionSnapshot s;
  s.will = AWill();
  std::string good = EncodeSnapshot(s, kNow);
  // An empty session: the version, five u32; then the will byte.
  const size_t will_at = 1 + 5 * 4;
  ASSERT_EQ(good[will_at], 1);
  std::string bad = good;
  bad[will_at] = 2;
  EXPECT_FALSE(DecodeSnapshot(bad, kNow).ok());
  // The delay's milliseconds, behind its seconds: 1000 or more.
  bad = good;
  bad[will_at + 5] = 0x03;
  bad[will_at + 6] = static_cast<char>(0xE8);
  EXPECT_FALSE(DecodeSnapshot(bad, kNow).ok());
  // Its flags, behind the delay, the topic and the payload: QoS 3, then an unknown bit.
  const size_t flags_at =
      will_at + 1 + 6 + 2 + s.will->will.topic.size() + 2 + s.will->will.payload.size();
  ASSERT_EQ(good[flags_at], 0x05);  // QoS 1, retain
  bad = good;
  bad[flags_at] = 0x03;
  EXPECT_FALSE(DecodeSnapshot(bad, kNow).ok());
  bad[flags_at] = 0x09;
  EXPECT_FALSE(DecodeSnapshot(bad, kNow).ok());
}

TEST(SessionCodec, ReadsRecordsOfVersionThree) {
  // Version 3 had the same layout (its messages, of the format before, are read by DecodeMessage).
  SessionSnapshot s = Busy().Snapshot();
  s.will = AWill();
  std::string bytes = EncodeSnapshot(s, kNow);
  ASSERT_EQ(bytes[0], 4);
  bytes[0] = 3;
  absl::StatusOr<SessionSnapshot> decoded = DecodeSnapshot(bytes, kNow);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->subscriptions.size(), 2u);
  EXPECT_TRUE(decoded->will);
}

TEST(SessionCodec, ReadsRecordsOfTheVersionBeforeWills) {
  // Version 2 was version 3 without the will byte at the end.
  std::string bytes = EncodeSnapshot(Busy().Snapshot(), kNow);
  ASSERT_EQ(bytes.back(), '\0');
  bytes.pop_back();
  bytes[0] = 2;
  absl::StatusOr<SessionSnapshot> decoded = DecodeSnapshot(bytes, kNow);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->subscriptions.size(), 2u);
  EXPECT_FALSE(decoded->will);
}

TEST(SessionCodec, AppliesSubscriptionChangesAppendedToARecord) {
  Session s = Busy();
  std::string record = EncodeSnapshot(s.Snapshot(), kNow);
  // Subscribed to a new filter, and to one again with other options; then unsubscribed.
  s.subscriptions()["c/+"] = {.options = {.qos = mqtt::QoS::k1}, .subscription_id = 3};
  s.subscriptions()["a/#"] = {.options = {.qos = mqtt::QoS::k0, .no_local = true}};
  s.subscriptions().erase("$share/g/b");
  record += EncodeSubscriptionChanges(s.subscriptions(), {"c/+", "a/#", "$share/g/b"});
  s.subscriptions().erase("c/+");
  record += EncodeSubscriptionChanges(s.subscriptions(), {"c/+"});
  s.subscriptions()["c/+"] = {.options = {.qos = mqtt::QoS::k2, .retain_handling = 1}};
  std::string last = EncodeSubscriptionChanges(s.subscriptions(), {"c/+"});
  record += last;

  absl::StatusOr<SessionSnapshot> decoded = DecodeSnapshot(record, kNow);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->subscriptions.size(), 2u);
  const SubscriptionRecord& a = decoded->subscriptions.at("a/#");
  EXPECT_EQ(a.options.qos, mqtt::QoS::k0);
  EXPECT_TRUE(a.options.no_local);
  EXPECT_EQ(a.subscription_id, 0u);
  const SubscriptionRecord& c = decoded->subscriptions.at("c/+");
  EXPECT_EQ(c.options.qos, mqtt::QoS::k2);
  EXPECT_EQ(c.options.retain_handling, 1);
  EXPECT_EQ(c.subscription_id, 0u);
  // The rest of the session is untouched by them.
  EXPECT_EQ(decoded->inflight.size(), 2u);
  EXPECT_EQ(decoded->queued.size(), 2u);

  // A change cut short, or of an unknown kind, is refused.
  for (size_t n = 1; n < last.size(); ++n) {
    EXPECT_FALSE(DecodeSnapshot(record.substr(0, record.size() - n), kNow).ok()) << n;
  }
  EXPECT_FALSE(DecodeSnapshot(record + '\x03', kNow).ok());
}

TEST(SessionCodec, OneDeliveryAlone) {
  Delivery d = Deliver("q/1", mqtt::QoS::k2, kNow + std::chrono::seconds(60));
  absl::StatusOr<Delivery> back =
      DecodeDelivery(EncodeDelivery(d, kNow), kNow + std::chrono::seconds(20));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->qos, mqtt::QoS::k2);
  EXPECT_TRUE(back->retain);
  EXPECT_THAT(back->subscription_ids, ElementsAre(7, 9));
  EXPECT_EQ(back->message->topic, "q/1");
  EXPECT_EQ(back->message->payload, std::string("pay\0load", 8));
  // 60 s left when encoded: 60 s from the decoding, less the wall-clock time in between (nodes'
  // steady clocks are not comparable; message_test.cc has the long waits).
  EXPECT_LE(*back->message->expires_at, kNow + std::chrono::seconds(80));
  EXPECT_GT(*back->message->expires_at, kNow + std::chrono::seconds(79));
  std::string bytes = EncodeDelivery(d, kNow);
  EXPECT_FALSE(DecodeDelivery(bytes.substr(0, bytes.size() - 1), kNow).ok());
  EXPECT_FALSE(DecodeDelivery(bytes + "x", kNow).ok());
}

TEST(SessionCodec, EmptySession) {
  Session s("client", 1, 100);
  absl::StatusOr<SessionSnapshot> decoded =
      DecodeSnapshot(EncodeSnapshot(s.Snapshot(), kNow), kNow);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->subscriptions.empty());
  EXPECT_TRUE(decoded->inflight.empty());
  EXPECT_TRUE(decoded->queued.empty());
}

TEST(SessionCodec, RefusesBadBytes) {
  SessionSnapshot busy = Busy().Snapshot();
  busy.will = AWill();
  std::string good = EncodeSnapshot(busy, kNow);
  EXPECT_FALSE(DecodeSnapshot("", kNow).ok());
  EXPECT_FALSE(DecodeSnapshot(std::string(1, '\x09'), kNow).ok());  // unknown version
  // Every truncation, and trailing bytes, are refused rather than half-read.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeSnapshot(good.substr(0, n), kNow).ok()) << n;
  }
  EXPECT_FALSE(DecodeSnapshot(good + "x", kNow).ok());
  // A count far beyond the bytes there are does not allocate or loop for long.
  std::string huge = good.substr(0, 1) + std::string("\xff\xff\xff\xff", 4);
  EXPECT_FALSE(DecodeSnapshot(huge, kNow).ok());
}

}  // namespace
}  // namespace backend
