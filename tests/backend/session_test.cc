// Tests of backend/session.cc: the bounded queue, the send window, packet identifiers, the QoS 1
// and 2 acknowledgement flows (MQTT 5.0 §4.3), resending on reconnect (§4.4), expiry while queued
// (§3.3.2.3.3) and inbound QoS 2. Time is a Clock::time_point made up by each test.
#include "backend/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace backend {
namespace {

using ::testing::ElementsAre;
using Kind = Outgoing::Kind;
using Result = Session::EnqueueResult;
using Ack = Session::AckResult;

const Clock::time_point kNow = Clock::time_point() + std::chrono::hours(1);

MessagePtr Msg(std::string topic, mqtt::QoS qos = mqtt::QoS::k1,
               std::optional<Clock::time_point> expires_at = std::nullopt) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = "payload";
  m->qos = qos;
  m->expires_at = expires_at;
  return m;
}

Delivery Deliver(MessagePtr m, mqtt::QoS qos) {
  Delivery d;
  d.message = std::move(m);
  d.qos = qos;
  return d;
}

Delivery Deliver(std::string topic, mqtt::QoS qos) {
  return Deliver(Msg(std::move(topic), qos), qos);
}

// Pops one message and returns its packet identifier, failing the test when there is none.
uint16_t PopId(Session& s) {
  std::optional<Outgoing> out = s.PopNext(kNow);
  EXPECT_TRUE(out.has_value());
  return out ? out->packet_id : 0;
}

TEST(SessionTest, OfflineQueueIsBoundedByMaxQueued) {
  Session s("c", 1, 3);
  EXPECT_EQ(s.client_id(), "c");
  EXPECT_EQ(s.id(), 1u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), false), Result::kQueued);
  }
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), false), Result::kQueueFull);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k2), false), Result::kQueueFull);
  EXPECT_EQ(s.queued(), 3u);
  // Sending makes room again.
  ASSERT_TRUE(s.PopNext(kNow).has_value());
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), false), Result::kQueued);
  EXPECT_EQ(s.queued(), 3u);
}

TEST(SessionTest, OnlineQueueHoldsMaxQueuedBeyondTheFreeWindow) {
  // conf/broker.toml: max_queued_messages counts the messages beyond the in-flight window.
  Session s("c", 1, 3);
  s.set_send_window(2);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), true), Result::kQueued) << i;
  }
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), true), Result::kQueueFull);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k0), true), Result::kQueueFull);
  // Two leave for the window, which is now full: three stay queued, and that is the bound.
  uint16_t first = PopId(s);
  PopId(s);
  EXPECT_FALSE(s.PopNext(kNow).has_value());
  EXPECT_EQ(s.queued(), 3u);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), true), Result::kQueueFull);
  // An acknowledgement frees a slot of the window, and so one place in the queue.
  ASSERT_EQ(s.OnPuback(first), Ack::kDone);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), true), Result::kQueued);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), true), Result::kQueueFull);
  // Offline, the window is no excuse.
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), false), Result::kQueueFull);
}

TEST(SessionTest, NoQueueStillSendsWhatTheWindowTakes) {
  // max_queued 0: nothing beyond the window, but not nothing at all.
  Session s("c", 1, 0);
  s.set_send_window(1);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), false), Result::kQueueFull);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), true), Result::kQueued);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), true), Result::kQueueFull);
  uint16_t id = PopId(s);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k2), true), Result::kQueueFull);
  ASSERT_EQ(s.OnPuback(id), Ack::kDone);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k0), true), Result::kQueued);
  EXPECT_TRUE(s.PopNext(kNow).has_value());
}

TEST(SessionTest, OfflineSessionDropsQos0Only) {
  Session s("c", 1, 10);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k0), false), Result::kOfflineQos0);
  EXPECT_EQ(s.queued(), 0u);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k1), false), Result::kQueued);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k2), false), Result::kQueued);
  EXPECT_EQ(s.Enqueue(Deliver("t", mqtt::QoS::k0), true), Result::kQueued);
  EXPECT_EQ(s.queued(), 3u);
}

TEST(SessionTest, PopNextKeepsQueueOrderAndTheDeliveryAsGiven) {
  Session s("c", 1, 10);
  Delivery d = Deliver("first", mqtt::QoS::k1);
  d.retain = true;
  d.subscription_ids = {5, 9};
  MessagePtr first = d.message;
  s.Enqueue(d, true);
  s.Enqueue(Deliver("second", mqtt::QoS::k0), true);
  std::optional<Outgoing> out = s.PopNext(kNow);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->kind, Kind::kPublish);
  EXPECT_FALSE(out->dup);
  EXPECT_EQ(out->delivery.message, first);  // shared, not copied
  EXPECT_EQ(out->delivery.qos, mqtt::QoS::k1);
  EXPECT_TRUE(out->delivery.retain);
  EXPECT_THAT(out->delivery.subscription_ids, ElementsAre(5, 9));
  out = s.PopNext(kNow);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->delivery.message->topic, "second");
  EXPECT_EQ(out->packet_id, 0);  // QoS 0 has none
  EXPECT_FALSE(s.PopNext(kNow).has_value());
  EXPECT_EQ(s.inflight(), 1u);  // only the QoS 1 message
}

TEST(SessionTest, SendWindowBoundsQos1And2ButNotQos0) {
  Session s("c", 1, 100);
  s.set_send_window(2);
  s.Enqueue(Deliver("q1", mqtt::QoS::k1), true);
  s.Enqueue(Deliver("q2", mqtt::QoS::k2), true);
  s.Enqueue(Deliver("q0", mqtt::QoS::k0), true);
  s.Enqueue(Deliver("q1-blocked", mqtt::QoS::k1), true);
  s.Enqueue(Deliver("q0-behind", mqtt::QoS::k0), true);
  uint16_t a = PopId(s);
  PopId(s);
  EXPECT_EQ(s.inflight(), 2u);
  // The window is full, but a QoS 0 message needs no room in it.
  std::optional<Outgoing> out = s.PopNext(kNow);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->delivery.message->topic, "q0");
  // A QoS 1 message waits for room, and what is queued behind it waits too (order is kept).
  EXPECT_FALSE(s.PopNext(kNow).has_value());
  EXPECT_EQ(s.queued(), 2u);
  EXPECT_EQ(s.OnPuback(a), Ack::kDone);
  out = s.PopNext(kNow);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->delivery.message->topic, "q1-blocked");
  out = s.PopNext(kNow);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->delivery.message->topic, "q0-behind");
}

TEST(SessionTest, PacketIdsAreNonZeroAndUniqueInFlight) {
  Session s("c", 1, 1000);
  for (int i = 0; i < 500; ++i)
    s.Enqueue(Deliver("t", i % 2 ? mqtt::QoS::k1 : mqtt::QoS::k2), true);
  std::set<uint16_t> ids;
  for (int i = 0; i < 500; ++i) {
    uint16_t id = PopId(s);
    EXPECT_NE(id, 0);
    EXPECT_TRUE(ids.insert(id).second) << id;
  }
  EXPECT_EQ(s.inflight(), 500u);
}

TEST(SessionTest, PacketIdsWrapAroundSkippingIdsInUse) {
  Session s("c", 1, 10);
  // Identifiers 1 and 2 stay in flight throughout.
  s.Enqueue(Deliver("held", mqtt::QoS::k1), true);
  s.Enqueue(Deliver("held", mqtt::QoS::k2), true);
  ASSERT_EQ(PopId(s), 1);
  ASSERT_EQ(PopId(s), 2);
  // Use up 3 .. 65535, each acknowledged at once.
  for (uint32_t expected = 3; expected <= 65535; ++expected) {
    s.Enqueue(Deliver("t", mqtt::QoS::k1), true);
    uint16_t id = PopId(s);
    ASSERT_EQ(id, expected);
    ASSERT_EQ(s.OnPuback(id), Ack::kDone);
  }
  // After 65535 comes 1, then 2, both in use: 3 is next.
  s.Enqueue(Deliver("t", mqtt::QoS::k1), true);
  EXPECT_EQ(PopId(s), 3);
  s.Enqueue(Deliver("t", mqtt::QoS::k1), true);
  EXPECT_EQ(PopId(s), 4);
}

TEST(SessionTest, Qos1Flow) {
  Session s("c", 1, 10);
  s.Enqueue(Deliver("t", mqtt::QoS::k1), true);
  uint16_t id = PopId(s);
  EXPECT_EQ(s.OnPubcomp(id), Ack::kUnknown);  // wrong flow
  EXPECT_EQ(s.OnPubrec(id, mqtt::ReasonCode::kSuccess), Ack::kUnknown);
  EXPECT_EQ(s.inflight(), 1u);
  EXPECT_EQ(s.OnPuback(static_cast<uint16_t>(id + 1)), Ack::kUnknown);
  EXPECT_EQ(s.OnPuback(id), Ack::kDone);
  EXPECT_EQ(s.inflight(), 0u);
  EXPECT_EQ(s.OnPuback(id), Ack::kUnknown);  // acknowledged once only
}

TEST(SessionTest, Qos2Flow) {
  Session s("c", 1, 10);
  s.Enqueue(Deliver("t", mqtt::QoS::k2), true);
  uint16_t id = PopId(s);
  EXPECT_EQ(s.OnPuback(id), Ack::kUnknown);   // wrong flow
  EXPECT_EQ(s.OnPubcomp(id), Ack::kUnknown);  // PUBREC first
  EXPECT_EQ(s.OnPubrec(static_cast<uint16_t>(id + 1), mqtt::ReasonCode::kSuccess), Ack::kUnknown);
  EXPECT_EQ(s.OnPubrec(id, mqtt::ReasonCode::kSuccess), Ack::kSendPubrel);
  EXPECT_EQ(s.inflight(), 1u);  // the identifier stays until PUBCOMP
  EXPECT_EQ(s.OnPuback(id), Ack::kUnknown);
  EXPECT_EQ(s.OnPubcomp(id), Ack::kDone);
  EXPECT_EQ(s.inflight(), 0u);
  EXPECT_EQ(s.OnPubcomp(id), Ack::kUnknown);
  EXPECT_EQ(s.OnPubrec(id, mqtt::ReasonCode::kSuccess), Ack::kUnknown);
}

TEST(SessionTest, DuplicatePubrecIsAnsweredWithPubrelAgain) {
  Session s("c", 1, 10);
  s.Enqueue(Deliver("t", mqtt::QoS::k2), true);
  uint16_t id = PopId(s);
  EXPECT_EQ(s.OnPubrec(id, mqtt::ReasonCode::kSuccess), Ack::kSendPubrel);
  EXPECT_EQ(s.OnPubrec(id, mqtt::ReasonCode::kSuccess), Ack::kSendPubrel);
  EXPECT_EQ(s.inflight(), 1u);
  EXPECT_EQ(s.OnPubcomp(id), Ack::kDone);
}

TEST(SessionTest, PubrecWithAnErrorEndsTheFlow) {
  // MQTT 5.0 §4.3.3: a PUBREC reason code of 0x80 or above ends the exchange without PUBREL.
  Session s("c", 1, 10);
  s.set_send_window(1);
  s.Enqueue(Deliver("t", mqtt::QoS::k2), true);
  s.Enqueue(Deliver("u", mqtt::QoS::k2), true);
  uint16_t id = PopId(s);
  EXPECT_FALSE(s.PopNext(kNow).has_value());
  EXPECT_EQ(s.OnPubrec(id, mqtt::ReasonCode::kQuotaExceeded), Ack::kDone);
  EXPECT_EQ(s.inflight(), 0u);
  EXPECT_EQ(s.OnPubcomp(id), Ack::kUnknown);
  EXPECT_TRUE(s.Resends().empty());
  // The window has room again.
  EXPECT_TRUE(s.PopNext(kNow).has_value());
}

TEST(SessionTest, NoMatchingSubscribersIsNotAnError) {
  // 0x10 No matching subscribers is a success code (below 0x80): the flow continues.
  Session s("c", 1, 10);
  s.Enqueue(Deliver("t", mqtt::QoS::k2), true);
  uint16_t id = PopId(s);
  EXPECT_EQ(s.OnPubrec(id, mqtt::ReasonCode::kNoMatchingSubscribers), Ack::kSendPubrel);
}

TEST(SessionTest, ResendsRepeatInFlightInSendOrder) {
  Session s("c", 1, 10);
  MessagePtr m1 = Msg("one", mqtt::QoS::k1);
  MessagePtr m2 = Msg("two", mqtt::QoS::k2);
  MessagePtr m3 = Msg("three", mqtt::QoS::k2);
  MessagePtr m4 = Msg("four", mqtt::QoS::k1);
  MessagePtr m5 = Msg("five", mqtt::QoS::k1);
  s.Enqueue(Deliver(m1, mqtt::QoS::k1), true);
  s.Enqueue(Deliver(m2, mqtt::QoS::k2), true);
  s.Enqueue(Deliver(Msg("zero", mqtt::QoS::k0), mqtt::QoS::k0), true);
  s.Enqueue(Deliver(m3, mqtt::QoS::k2), true);
  s.Enqueue(Deliver(m4, mqtt::QoS::k1), true);
  s.Enqueue(Deliver(m5, mqtt::QoS::k1), true);
  uint16_t id1 = PopId(s);
  uint16_t id2 = PopId(s);
  ASSERT_TRUE(s.PopNext(kNow).has_value());  // QoS 0: nothing to resend
  uint16_t id3 = PopId(s);
  uint16_t id4 = PopId(s);
  uint16_t id5 = PopId(s);
  ASSERT_EQ(s.OnPubrec(id2, mqtt::ReasonCode::kSuccess), Ack::kSendPubrel);
  ASSERT_EQ(s.OnPuback(id4), Ack::kDone);

  std::vector<Outgoing> resends = s.Resends();
  ASSERT_EQ(resends.size(), 4u);
  EXPECT_EQ(resends[0].kind, Kind::kPublish);
  EXPECT_EQ(resends[0].packet_id, id1);
  EXPECT_TRUE(resends[0].dup);
  EXPECT_EQ(resends[0].delivery.message, m1);
  EXPECT_EQ(resends[0].delivery.qos, mqtt::QoS::k1);
  EXPECT_EQ(resends[1].kind, Kind::kPubrel);  // past PUBREC: only the release is repeated
  EXPECT_EQ(resends[1].packet_id, id2);
  EXPECT_EQ(resends[2].kind, Kind::kPublish);
  EXPECT_EQ(resends[2].packet_id, id3);
  EXPECT_TRUE(resends[2].dup);
  EXPECT_EQ(resends[2].delivery.message, m3);
  EXPECT_EQ(resends[2].delivery.qos, mqtt::QoS::k2);
  EXPECT_EQ(resends[3].packet_id, id5);
  EXPECT_EQ(resends[3].delivery.message, m5);

  // Resending changes nothing: the flows continue with the same identifiers.
  EXPECT_EQ(s.inflight(), 4u);
  EXPECT_EQ(s.OnPubcomp(id2), Ack::kDone);
  EXPECT_EQ(s.OnPuback(id1), Ack::kDone);
  EXPECT_EQ(s.OnPubrec(id3, mqtt::ReasonCode::kSuccess), Ack::kSendPubrel);
  EXPECT_EQ(s.OnPuback(id5), Ack::kDone);
}

TEST(SessionTest, ResendOrderIsSendOrderNotIdentifierOrder) {
  // After the identifiers wrap, a later message can have a smaller identifier.
  Session s("c", 1, 10);
  for (uint32_t i = 1; i < 65535; ++i) {
    s.Enqueue(Deliver("t", mqtt::QoS::k1), true);
    ASSERT_EQ(s.OnPuback(PopId(s)), Ack::kDone);
  }
  s.Enqueue(Deliver("late", mqtt::QoS::k1), true);
  s.Enqueue(Deliver("wrapped", mqtt::QoS::k1), true);
  ASSERT_EQ(PopId(s), 65535);
  ASSERT_EQ(PopId(s), 1);
  std::vector<Outgoing> resends = s.Resends();
  ASSERT_EQ(resends.size(), 2u);
  EXPECT_EQ(resends[0].packet_id, 65535);
  EXPECT_EQ(resends[0].delivery.message->topic, "late");
  EXPECT_EQ(resends[1].packet_id, 1);
  EXPECT_EQ(resends[1].delivery.message->topic, "wrapped");
}

TEST(SessionTest, ExpiredMessagesAreSkippedAndCounted) {
  Session s("c", 1, 10);
  const Clock::time_point deadline = kNow + std::chrono::seconds(10);
  s.Enqueue(Deliver(Msg("expires", mqtt::QoS::k1, deadline), mqtt::QoS::k1), true);
  s.Enqueue(Deliver(Msg("expires-too", mqtt::QoS::k0, deadline), mqtt::QoS::k0), true);
  s.Enqueue(Deliver(Msg("later", mqtt::QoS::k2, deadline + std::chrono::seconds(1)), mqtt::QoS::k2),
            true);
  s.Enqueue(Deliver(Msg("never", mqtt::QoS::k1), mqtt::QoS::k1), true);
  // At the deadline itself the interval has passed.
  std::optional<Outgoing> out = s.PopNext(deadline);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->delivery.message->topic, "later");
  EXPECT_EQ(out->packet_id, 1);  // the skipped ones took no identifier
  EXPECT_EQ(s.expired_dropped(), 2u);
  EXPECT_EQ(s.inflight(), 1u);
  out = s.PopNext(deadline + std::chrono::hours(1000));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->delivery.message->topic, "never");
  EXPECT_EQ(s.expired_dropped(), 2u);
}

TEST(SessionTest, MessageBeforeItsDeadlineIsSent) {
  Session s("c", 1, 10);
  const Clock::time_point deadline = kNow + std::chrono::seconds(10);
  s.Enqueue(Deliver(Msg("t", mqtt::QoS::k1, deadline), mqtt::QoS::k1), true);
  EXPECT_TRUE(s.PopNext(deadline - std::chrono::nanoseconds(1)).has_value());
  EXPECT_EQ(s.expired_dropped(), 0u);
}

TEST(SessionTest, OnlyExpiredMessagesLeaveNothingToSend) {
  Session s("c", 1, 10);
  s.Enqueue(Deliver(Msg("t", mqtt::QoS::k1, kNow), mqtt::QoS::k1), true);
  s.Enqueue(Deliver(Msg("t", mqtt::QoS::k1, kNow), mqtt::QoS::k1), true);
  EXPECT_FALSE(s.PopNext(kNow).has_value());
  EXPECT_EQ(s.queued(), 0u);
  EXPECT_EQ(s.expired_dropped(), 2u);
}

TEST(SessionTest, InboundQos2) {
  Session s("c", 1, 10);
  EXPECT_TRUE(s.BeginInboundQos2(7));
  EXPECT_FALSE(s.BeginInboundQos2(7));  // a retransmission: not delivered again
  EXPECT_TRUE(s.BeginInboundQos2(8));
  EXPECT_EQ(s.inbound_qos2_pending(), 2u);
  EXPECT_TRUE(s.ReleaseInboundQos2(7));
  EXPECT_FALSE(s.ReleaseInboundQos2(7));
  EXPECT_FALSE(s.ReleaseInboundQos2(9));
  EXPECT_EQ(s.inbound_qos2_pending(), 1u);
  // Once released, the identifier is free for a new message.
  EXPECT_TRUE(s.BeginInboundQos2(7));
}

TEST(SessionTest, ForgetFreesTheIdentifierAndTheWindow) {
  Session s("c", 1, 10);
  s.set_send_window(1);
  s.Enqueue(Deliver("too-large", mqtt::QoS::k1), true);
  s.Enqueue(Deliver("next", mqtt::QoS::k1), true);
  uint16_t id = PopId(s);
  EXPECT_FALSE(s.PopNext(kNow).has_value());
  s.Forget(id);
  EXPECT_EQ(s.inflight(), 0u);
  EXPECT_EQ(s.OnPuback(id), Ack::kUnknown);
  EXPECT_TRUE(s.Resends().empty());
  EXPECT_TRUE(s.PopNext(kNow).has_value());
  s.Forget(12345);  // unknown: nothing happens
  EXPECT_EQ(s.inflight(), 1u);
}

}  // namespace
}  // namespace backend
