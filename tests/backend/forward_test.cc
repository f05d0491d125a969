// Tests of backend/forward.cc: what one node asks of another survives the trip as user properties,
// the link's properties are taken out and the publisher's own stay, and a forward that lacks them
// or carries a malformed one is refused.
#include "backend/forward.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace backend {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

mqtt::Properties Carrying(const ForwardProperties& link) {
  mqtt::Properties p;
  p.user_properties.emplace_back("app", "kept");
  for (const auto& kv : link)
    p.user_properties.push_back(kv);
  return p;
}

TEST(Forward, RoundTripKeepsEveryPart) {
  ForwardSpec spec{.normal = true, .store_retained = true, .shared = {{"g", "a/+"}, {"h", "#"}}};
  mqtt::Properties p = Carrying(EncodeForward(spec, mqtt::QoS::k2, /*retain=*/true));
  std::optional<ReceivedForward> f = DecodeForward(p);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->qos, mqtt::QoS::k2);
  EXPECT_TRUE(f->retain);
  EXPECT_TRUE(f->spec.normal);
  EXPECT_TRUE(f->spec.store_retained);
  EXPECT_THAT(f->spec.shared, ElementsAre(Pair("g", "a/+"), Pair("h", "#")));
  EXPECT_THAT(p.user_properties, ElementsAre(Pair("app", "kept")));
}

TEST(Forward, PlainMessageIsOneShortProperty) {
  ForwardProperties link = EncodeForward({.normal = true}, mqtt::QoS::k0, false);
  EXPECT_THAT(link, ElementsAre(Pair("sb.link", "0n")));
  mqtt::Properties p = Carrying(link);
  std::optional<ReceivedForward> f = DecodeForward(p);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->qos, mqtt::QoS::k0);
  EXPECT_FALSE(f->retain);
  EXPECT_TRUE(f->spec.normal);
  EXPECT_FALSE(f->spec.store_retained);
  EXPECT_TRUE(f->spec.shared.empty());
}

TEST(Forward, TargetRoundTripKeepsTheDelivery) {
  ForwardSpec spec{.target = ForwardTarget{.client_id = "dev/1 2\n3",
                                           .qos = mqtt::QoS::k1,
                                           .retain = true,
                                           .subscription_ids = {7, 268435455}}};
  mqtt::Properties p = Carrying(EncodeForward(spec, mqtt::QoS::k2, /*retain=*/false));
  std::optional<ReceivedForward> f = DecodeForward(p);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->qos, mqtt::QoS::k2) << "the publisher's QoS travels apart from the delivery's";
  EXPECT_FALSE(f->spec.normal);
  ASSERT_TRUE(f->spec.target.has_value());
  EXPECT_EQ(f->spec.target->client_id, "dev/1 2\n3") << "the client id is the value's tail";
  EXPECT_EQ(f->spec.target->qos, mqtt::QoS::k1);
  EXPECT_TRUE(f->spec.target->retain);
  EXPECT_THAT(f->spec.target->subscription_ids, ElementsAre(7, 268435455));
  EXPECT_THAT(p.user_properties, ElementsAre(Pair("app", "kept")));

  ForwardSpec bare;
  bare.target.emplace().client_id = "c";
  mqtt::Properties plain = Carrying(EncodeForward(bare, mqtt::QoS::k0, false));
  f = DecodeForward(plain);
  ASSERT_TRUE(f.has_value() && f->spec.target.has_value());
  EXPECT_EQ(f->spec.target->qos, mqtt::QoS::k0);
  EXPECT_FALSE(f->spec.target->retain);
  EXPECT_TRUE(f->spec.target->subscription_ids.empty());
}

TEST(Forward, APublishersOwnLinkNamedPropertiesPassThrough) {
  // A client cannot plant the link's properties: they are the last ones, counted, and whatever
  // precedes them is the publisher's, passed on as it came (§3.3.2.3.7).
  mqtt::Properties p;
  p.user_properties = {{"sb.link.shared", "x"}, {"sb.link.to", "2\nvictim"}, {"sb.link", "0"}};
  const mqtt::UserProperties sent = p.user_properties;
  for (const auto& kv : EncodeForward({.normal = true}, mqtt::QoS::k1, false))
    p.user_properties.push_back(kv);
  std::optional<ReceivedForward> f = DecodeForward(p);
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->spec.normal);
  EXPECT_TRUE(f->spec.shared.empty());
  EXPECT_FALSE(f->spec.target.has_value());
  EXPECT_EQ(p.user_properties, sent);
}

TEST(Forward, RefusesWhatIsNotAForward) {
  mqtt::Properties none;
  EXPECT_FALSE(DecodeForward(none).has_value());

  for (const char* bad : {"", "3n", "xn", "1#", "1#0", "1#x", "1#1x", "1#5"}) {
    mqtt::Properties p;
    p.user_properties.emplace_back("sb.link", bad);
    EXPECT_FALSE(DecodeForward(p).has_value()) << '"' << bad << '"';
  }

  mqtt::Properties not_last;
  not_last.user_properties = {{"sb.link", "1n"}, {"app", "x"}};
  EXPECT_FALSE(DecodeForward(not_last).has_value());

  mqtt::Properties counts_a_publishers;
  counts_a_publishers.user_properties = {{"app", "x"}, {"sb.link", "1#1"}};
  EXPECT_FALSE(DecodeForward(counts_a_publishers).has_value());

  mqtt::Properties shared_without_newline;
  shared_without_newline.user_properties = {{"sb.link.shared", "g-a/+"}, {"sb.link", "1#1"}};
  EXPECT_FALSE(DecodeForward(shared_without_newline).has_value());

  for (const char* bad :
       {"1c", "\nc", "3\nc", "1x\nc", "1 \nc", "1 0\nc", "1 7x\nc", "1 99999999999\nc"}) {
    mqtt::Properties p;
    p.user_properties = {{"sb.link.to", bad}, {"sb.link", "1#1"}};
    EXPECT_FALSE(DecodeForward(p).has_value()) << '"' << bad << '"';
  }
}

}  // namespace
}  // namespace backend
