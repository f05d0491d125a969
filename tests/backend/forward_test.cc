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

TEST(Forward, RefusesWhatIsNotAForward) {
  mqtt::Properties none;
  EXPECT_FALSE(DecodeForward(none).has_value());

  for (const char* bad : {"", "3n", "xn"}) {
    mqtt::Properties p;
    p.user_properties.emplace_back("sb.link", bad);
    EXPECT_FALSE(DecodeForward(p).has_value()) << '"' << bad << '"';
    EXPECT_TRUE(p.user_properties.empty()) << "the link's property is taken out";
  }

  mqtt::Properties shared_without_newline;
  shared_without_newline.user_properties.emplace_back("sb.link", "1");
  shared_without_newline.user_properties.emplace_back("sb.link.shared", "g-a/+");
  EXPECT_FALSE(DecodeForward(shared_without_newline).has_value());

  for (const char* bad :
       {"1c", "\nc", "3\nc", "1x\nc", "1 \nc", "1 0\nc", "1 7x\nc", "1 99999999999\nc"}) {
    mqtt::Properties p;
    p.user_properties.emplace_back("sb.link", "1");
    p.user_properties.emplace_back("sb.link.to", bad);
    EXPECT_FALSE(DecodeForward(p).has_value()) << '"' << bad << '"';
    EXPECT_TRUE(p.user_properties.empty()) << "the link's properties are taken out";
  }
}

}  // namespace
}  // namespace backend
