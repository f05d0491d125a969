// Tests of mqtt/encoder.cc: every packet type survives Encode then decode in both versions (with
// every 5.0 property kind), a few packets encode to known bytes, 3.1.1 sessions get 3.1.1 answers,
// and EncodePublishHeader plus a payload is the same PUBLISH that Encode writes.
#include "mqtt/encoder.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "mqtt/decoder.h"
#include "mqtt/error.h"

namespace mqtt {
namespace {

using R = ReasonCode;

std::string Hex(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    char c = text[i];
    if (c == ' ') {
      ++i;
    } else if (c == '\'') {
      size_t end = text.find('\'', i + 1);
      out.append(text.substr(i + 1, end - i - 1));
      i = end + 1;
    } else {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
      i += 2;
    }
  }
  return out;
}

std::string Encoded(const Packet& packet, Version version) {
  std::string out;
  Encode(packet, version, out);
  return out;
}

// Decodes `bytes`, which must be exactly one packet.
absl::StatusOr<Packet> DecodeWhole(std::string_view bytes, Version version) {
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(bytes, kMaxPacketBytes);
  if (!frame.ok()) return frame.status();
  if (!frame->has_value()) return absl::InternalError("incomplete packet");
  if ((*frame)->size != bytes.size()) return absl::InternalError("bytes after the packet");
  return DecodePacket(**frame, version);
}

// ---------------------------------------------------------------------------------------------
// Sample packets. Between them the 5.0 samples carry every property kind, each in a packet that
// allows it, with repeated User Properties and several Subscription Identifiers in a PUBLISH.

const UserProperties kUserProperties = {{"k", "v"}, {"k", "v2"}, {"", ""}, {"ключ", "值"}};

Properties WillProperties() {
  Properties p;
  p.payload_format_indicator = 1;
  p.message_expiry_interval = 3600;
  p.content_type = "text/plain";
  p.response_topic = "reply/to";
  p.correlation_data = std::string("\x00\x01\xFF", 3);
  p.will_delay_interval = 30;
  p.user_properties = kUserProperties;
  return p;
}

Connect RichConnect5() {
  Connect c{.version = Version::k5,
            .clean_start = false,
            .keep_alive_s = 65535,
            .client_id = "client-1",
            .will = Will{.topic = "clients/1/status",
                         .payload = std::string("gone\0", 5),
                         .qos = QoS::k2,
                         .retain = true,
                         .properties = WillProperties()},
            .username = "user",
            .password = std::string("\x00pw", 3)};
  c.properties.session_expiry_interval = 0xFFFFFFFF;
  c.properties.authentication_method = "SCRAM-SHA-1";
  c.properties.authentication_data = std::string("\x00\x01", 2);
  c.properties.request_problem_information = 0;
  c.properties.request_response_information = 1;
  c.properties.receive_maximum = 100;
  c.properties.topic_alias_maximum = 10;
  c.properties.maximum_packet_size = 1 << 20;
  c.properties.user_properties = kUserProperties;
  return c;
}

Connack RichConnack5() {
  Connack c{.session_present = true, .reason = R::kSuccess};
  Properties& p = c.properties;
  p.session_expiry_interval = 7200;
  p.assigned_client_identifier = "auto-123";
  p.server_keep_alive = 30;
  p.authentication_method = "SCRAM-SHA-1";
  p.authentication_data = "server-final";
  p.response_information = "resp/";
  p.server_reference = "other:1883";
  p.reason_string = "welcome";
  p.receive_maximum = 65535;
  p.topic_alias_maximum = 0;
  p.maximum_qos = 1;
  p.retain_available = 0;
  p.user_properties = kUserProperties;
  p.maximum_packet_size = 268'435'460;
  p.wildcard_subscription_available = 1;
  p.subscription_identifier_available = 0;
  p.shared_subscription_available = 1;
  return c;
}

Publish RichPublish5() {
  Publish p{.topic = "sport/tennis/player1",
            .payload = std::string("score\0 15-0", 11),
            .qos = QoS::k1,
            .retain = true,
            .dup = true,
            .packet_id = 0xABCD};
  p.properties = WillProperties();
  p.properties.will_delay_interval.reset();
  p.properties.subscription_identifiers = {1, 127, 128, 16'383, 16'384, kMaxVarInt};
  p.properties.topic_alias = 3;
  return p;
}

Properties AckProperties() {
  Properties p;
  p.reason_string = "because";
  p.user_properties = kUserProperties;
  return p;
}

std::vector<Packet> RichPackets5() {
  Subscribe subscribe{
      .packet_id = 1,
      .topics = {
          {"a/+/c", {.qos = QoS::k0}},
          {"$share/g/d/#", {.qos = QoS::k1, .retain_as_published = true, .retain_handling = 2}},
          {"e", {.qos = QoS::k2, .no_local = true, .retain_handling = 1}}}};
  subscribe.properties.subscription_identifiers = {kMaxVarInt};
  subscribe.properties.user_properties = kUserProperties;
  Unsubscribe unsubscribe{.packet_id = 2, .filters = {"a/+/c", "$share/g/d/#"}};
  unsubscribe.properties.user_properties = kUserProperties;
  Disconnect disconnect{.reason = R::kServerMoved};
  disconnect.properties.session_expiry_interval = 0;
  disconnect.properties.server_reference = "other:1883";
  disconnect.properties.reason_string = "moved";
  disconnect.properties.user_properties = kUserProperties;
  Auth auth{.reason = R::kContinueAuthentication};
  auth.properties.authentication_method = "SCRAM-SHA-1";
  auth.properties.authentication_data = "client-final";
  auth.properties.reason_string = "more";
  auth.properties.user_properties = kUserProperties;
  return {
      RichConnect5(),
      RichConnack5(),
      Connack{.reason = R::kBadAuthenticationMethod},
      RichPublish5(),
      Publish{.topic = "t", .qos = QoS::k0},
      Publish{.topic = "t", .payload = "p", .qos = QoS::k2, .packet_id = 1},
      Publish{.topic = "", .properties = {.topic_alias = 65535}},
      Puback{.packet_id = 1},
      Puback{.packet_id = 2, .reason = R::kQuotaExceeded, .properties = AckProperties()},
      Pubrec{.packet_id = 3, .reason = R::kNoMatchingSubscribers},
      Pubrec{.packet_id = 4, .properties = AckProperties()},
      Pubrel{.packet_id = 5, .reason = R::kPacketIdentifierNotFound, .properties = AckProperties()},
      Pubcomp{.packet_id = 65535, .reason = R::kPacketIdentifierNotFound},
      subscribe,
      Suback{.packet_id = 1,
             .reasons = {R::kGrantedQos2, R::kSharedSubscriptionsNotSupported, R::kSuccess},
             .properties = AckProperties()},
      unsubscribe,
      Unsuback{.packet_id = 2,
               .reasons = {R::kSuccess, R::kNoSubscriptionExisted},
               .properties = AckProperties()},
      Pingreq{},
      Pingresp{},
      Disconnect{},
      Disconnect{.reason = R::kDisconnectWithWill},
      disconnect,
      Auth{},
      auth,
  };
}

std::vector<Packet> Packets311() {
  return {
      Connect{.version = Version::k311,
              .clean_start = true,
              .keep_alive_s = 60,
              .client_id = "c",
              .will = Will{.topic = "w", .payload = "bye", .qos = QoS::k1, .retain = true},
              .username = "u",
              .password = std::string("\x00\xFF", 2)},
      Connect{.version = Version::k311, .clean_start = false, .client_id = "", .username = "u"},
      Connack{.session_present = true},
      Connack{.reason = R::kNotAuthorized},
      Publish{.topic = "a/b", .payload = "x", .qos = QoS::k0, .retain = true},
      Publish{.topic = "a/b", .payload = std::string(300, 'y'), .qos = QoS::k1, .packet_id = 9},
      Publish{.topic = "/", .qos = QoS::k2, .dup = true, .packet_id = 65535},
      Puback{.packet_id = 1},
      Pubrec{.packet_id = 2},
      Pubrel{.packet_id = 3},
      Pubcomp{.packet_id = 4},
      Subscribe{.packet_id = 5, .topics = {{"a/#", {.qos = QoS::k2}}, {"+", {.qos = QoS::k0}}}},
      Suback{.packet_id = 5,
             .reasons = {R::kSuccess, R::kGrantedQos1, R::kGrantedQos2, R::kUnspecifiedError}},
      Unsubscribe{.packet_id = 6, .filters = {"a/#", "+"}},
      Unsuback{.packet_id = 6},
      Pingreq{},
      Pingresp{},
      Disconnect{},
  };
}

// ---------------------------------------------------------------------------------------------
// Round trips

void ExpectRoundTrip(const std::vector<Packet>& packets, Version version) {
  for (const Packet& packet : packets) {
    SCOPED_TRACE(PacketTypeName(TypeOf(packet)));
    std::string bytes = Encoded(packet, version);
    absl::StatusOr<Packet> decoded = DecodeWhole(bytes, version);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(*decoded == packet);
  }
}

std::set<PacketType> TypesOf(const std::vector<Packet>& packets) {
  std::set<PacketType> types;
  for (const Packet& p : packets)
    types.insert(TypeOf(p));
  return types;
}

TEST(EncoderRoundTripTest, SamplesCoverEveryPacketType) {
  EXPECT_EQ(TypesOf(RichPackets5()).size(), 15u);
  EXPECT_EQ(TypesOf(Packets311()).size(), 14u);  // all but AUTH
}

// The property kinds present in `p`.
std::set<PropertyId> KindsIn(const Properties& p) {
  using P = PropertyId;
  std::set<PropertyId> kinds;
  auto add = [&](PropertyId id, bool present) {
    if (present) kinds.insert(id);
  };
  add(P::kPayloadFormatIndicator, p.payload_format_indicator.has_value());
  add(P::kMessageExpiryInterval, p.message_expiry_interval.has_value());
  add(P::kContentType, p.content_type.has_value());
  add(P::kResponseTopic, p.response_topic.has_value());
  add(P::kCorrelationData, p.correlation_data.has_value());
  add(P::kSubscriptionIdentifier, !p.subscription_identifiers.empty());
  add(P::kSessionExpiryInterval, p.session_expiry_interval.has_value());
  add(P::kAssignedClientIdentifier, p.assigned_client_identifier.has_value());
  add(P::kServerKeepAlive, p.server_keep_alive.has_value());
  add(P::kAuthenticationMethod, p.authentication_method.has_value());
  add(P::kAuthenticationData, p.authentication_data.has_value());
  add(P::kRequestProblemInformation, p.request_problem_information.has_value());
  add(P::kWillDelayInterval, p.will_delay_interval.has_value());
  add(P::kRequestResponseInformation, p.request_response_information.has_value());
  add(P::kResponseInformation, p.response_information.has_value());
  add(P::kServerReference, p.server_reference.has_value());
  add(P::kReasonString, p.reason_string.has_value());
  add(P::kReceiveMaximum, p.receive_maximum.has_value());
  add(P::kTopicAliasMaximum, p.topic_alias_maximum.has_value());
  add(P::kTopicAlias, p.topic_alias.has_value());
  add(P::kMaximumQos, p.maximum_qos.has_value());
  add(P::kRetainAvailable, p.retain_available.has_value());
  add(P::kUserProperty, !p.user_properties.empty());
  add(P::kMaximumPacketSize, p.maximum_packet_size.has_value());
  add(P::kWildcardSubscriptionAvailable, p.wildcard_subscription_available.has_value());
  add(P::kSubscriptionIdentifierAvailable, p.subscription_identifier_available.has_value());
  add(P::kSharedSubscriptionAvailable, p.shared_subscription_available.has_value());
  return kinds;
}

TEST(EncoderRoundTripTest, SamplesCoverEveryPropertyKind) {
  std::set<PropertyId> kinds;
  for (const Packet& packet : RichPackets5()) {
    std::visit(
        [&](const auto& p) {
          if constexpr (requires { p.properties; }) kinds.merge(KindsIn(p.properties));
          if constexpr (requires { p.will; }) {
            if (p.will) kinds.merge(KindsIn(p.will->properties));
          }
        },
        packet);
  }
  EXPECT_EQ(kinds.size(), 27u);
  EXPECT_EQ(RichPublish5().properties.subscription_identifiers.size(), 6u);
}

TEST(EncoderRoundTripTest, EveryPacketTypeMqtt5WithRichProperties) {
  ExpectRoundTrip(RichPackets5(), Version::k5);
}

TEST(EncoderRoundTripTest, EveryPacketTypeMqtt311) {
  ExpectRoundTrip(Packets311(), Version::k311);
}

TEST(EncoderRoundTripTest, ConnectUsesItsOwnVersion) {
  // A CONNECT names its protocol level; the session version does not change it.
  absl::StatusOr<Packet> decoded =
      DecodeWhole(Encoded(RichConnect5(), Version::k311), Version::k311);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<Connect>(*decoded), RichConnect5());
}

TEST(EncoderRoundTripTest, Mqtt31ConnectAndConnack) {
  Connect c{.version = Version::k31, .keep_alive_s = 30, .client_id = "old"};
  std::string bytes = Encoded(c, Version::k31);
  EXPECT_EQ(bytes.substr(2, 9), std::string("\0\6MQIsdp\3", 9));
  absl::StatusOr<Packet> decoded = DecodeWhole(bytes, Version::k31);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<Connect>(*decoded), c);
  // 3.1's CONNACK has a reserved byte where 3.1.1 says "session present".
  EXPECT_EQ(Encoded(Connack{.session_present = true}, Version::k31), std::string("\x20\2\0\0", 4));
  EXPECT_EQ(Encoded(Connack{.session_present = true}, Version::k311), std::string("\x20\2\1\0", 4));
}

TEST(EncoderRoundTripTest, LargePublishNeedsAThreeByteRemainingLength) {
  Publish p{.topic = "big", .payload = std::string(70'000, 'z'), .qos = QoS::k1, .packet_id = 1};
  std::string bytes = Encoded(p, Version::k5);
  EXPECT_EQ(bytes.size(), 1 + 3 + 2 + 3 + 2 + 1 + 70'000u);
  absl::StatusOr<Packet> decoded = DecodeWhole(bytes, Version::k5);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<Publish>(*decoded), p);
}

TEST(EncoderRoundTripTest, Mqtt311DropsWhatItCannotSay) {
  Subscribe s{
      .packet_id = 1,
      .topics = {
          {"a",
           {.qos = QoS::k1, .no_local = true, .retain_as_published = true, .retain_handling = 2}}}};
  s.properties.user_properties = kUserProperties;
  Publish p = RichPublish5();
  Disconnect d{.reason = R::kDisconnectWithWill, .properties = AckProperties()};

  absl::StatusOr<Packet> decoded = DecodeWhole(Encoded(s, Version::k311), Version::k311);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<Subscribe>(*decoded),
            (Subscribe{.packet_id = 1, .topics = {{"a", {.qos = QoS::k1}}}}));

  decoded = DecodeWhole(Encoded(p, Version::k311), Version::k311);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  p.properties = {};
  EXPECT_EQ(std::get<Publish>(*decoded), p);

  EXPECT_EQ(Encoded(d, Version::k311), Hex("E0 00"));
  EXPECT_EQ(
      Encoded(Puback{.packet_id = 7, .reason = R::kQuotaExceeded, .properties = AckProperties()},
              Version::k311),
      Hex("40 02 00 07"));
}

// ---------------------------------------------------------------------------------------------
// Known bytes

TEST(EncoderBytesTest, Pings) {
  for (Version v : {Version::k311, Version::k5}) {
    EXPECT_EQ(Encoded(Pingreq{}, v), Hex("C0 00"));
    EXPECT_EQ(Encoded(Pingresp{}, v), Hex("D0 00"));
  }
}

TEST(EncoderBytesTest, Mqtt311Connack) {
  EXPECT_EQ(Encoded(Connack{.session_present = true}, Version::k311), Hex("20 02 01 00"));
  EXPECT_EQ(Encoded(Connack{.reason = R::kBadUserNameOrPassword}, Version::k311),
            Hex("20 02 00 04"));
}

TEST(EncoderBytesTest, Mqtt5ConnackWithoutProperties) {
  EXPECT_EQ(Encoded(Connack{.reason = R::kNotAuthorized}, Version::k5), Hex("20 03 00 87 00"));
}

TEST(EncoderBytesTest, Mqtt5SuccessAckWithoutPropertiesIsTwoBytes) {
  EXPECT_EQ(Encoded(Puback{.packet_id = 7}, Version::k5), Hex("40 02 00 07"));
  EXPECT_EQ(Encoded(Pubrec{.packet_id = 7}, Version::k5), Hex("50 02 00 07"));
  EXPECT_EQ(Encoded(Pubrel{.packet_id = 7}, Version::k5), Hex("62 02 00 07"));
  EXPECT_EQ(Encoded(Pubcomp{.packet_id = 7}, Version::k5), Hex("70 02 00 07"));
}

TEST(EncoderBytesTest, Mqtt5NormalDisconnectAndEmptyAuthAreEmpty) {
  EXPECT_EQ(Encoded(Disconnect{}, Version::k5), Hex("E0 00"));
  EXPECT_EQ(Encoded(Auth{}, Version::k5), Hex("F0 00"));
}

TEST(EncoderBytesTest, Mqtt311MinimalConnect) {
  Connect c{.version = Version::k311, .clean_start = true, .keep_alive_s = 60};
  EXPECT_EQ(Encoded(c, Version::k311), Hex("10 0C 00 04 'MQTT' 04 02 00 3C 00 00"));
}

TEST(EncoderBytesTest, Mqtt5SpecConnectExample) {
  // MQTT 5.0 §3.1.2.11's variable header example, with a payload of every field.
  Connect c{.version = Version::k5,
            .clean_start = true,
            .keep_alive_s = 10,
            .client_id = "cid",
            .will = Will{.topic = "a/b", .payload = "hi", .qos = QoS::k1},
            .username = "user",
            .password = "pw"};
  c.will->properties.payload_format_indicator = 1;
  c.properties.session_expiry_interval = 10;
  EXPECT_EQ(Encoded(c, Version::k5),
            Hex("10 2B 00 04 'MQTT' 05 CE 00 0A 05 11 00 00 00 0A 00 03 'cid' 02 01 01 00 03 'a/b'"
                " 00 02 'hi' 00 04 'user' 00 02 'pw'"));
}

TEST(EncoderBytesTest, Mqtt5Subscribe) {
  Subscribe s{
      .packet_id = 10,
      .topics = {
          {"a/b",
           {.qos = QoS::k1, .no_local = true, .retain_as_published = true, .retain_handling = 2}}}};
  s.properties.subscription_identifiers = {5};
  EXPECT_EQ(Encoded(s, Version::k5), Hex("82 0B 00 0A 02 0B 05 00 03 'a/b' 2D"));
  EXPECT_EQ(Encoded(s, Version::k311), Hex("82 08 00 0A 00 03 'a/b' 01"));
}

TEST(EncoderBytesTest, Mqtt5PublishWithSubscriptionIdentifiers) {
  Publish p{.topic = "t", .payload = "x", .qos = QoS::k1, .packet_id = 1};
  p.properties.subscription_identifiers = {1, 128};
  EXPECT_EQ(Encoded(p, Version::k5), Hex("32 0C 00 01 't' 00 01 05 0B 01 0B 80 01 'x'"));
}

// ---------------------------------------------------------------------------------------------
// 3.1.1 mappings

TEST(Mqtt311MappingTest, ConnackReturnCodes) {
  struct Case {
    ReasonCode reason;
    uint8_t code;
  };
  for (Case c : {Case{R::kSuccess, 0}, Case{R::kUnsupportedProtocolVersion, 1},
                 Case{R::kClientIdentifierNotValid, 2}, Case{R::kServerUnavailable, 3},
                 Case{R::kServerBusy, 3}, Case{R::kBadUserNameOrPassword, 4},
                 Case{R::kNotAuthorized, 5}, Case{R::kBanned, 5}}) {
    SCOPED_TRACE(ReasonName(c.reason));
    EXPECT_EQ(ToConnackReturnCode311(c.reason), c.code);
    std::string bytes = Encoded(Connack{.reason = c.reason}, Version::k311);
    ASSERT_EQ(bytes.size(), 4u);
    EXPECT_EQ(static_cast<uint8_t>(bytes[3]), c.code);
    absl::StatusOr<Packet> decoded = DecodeWhole(bytes, Version::k311);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(std::get<Connack>(*decoded).reason, FromConnackReturnCode311(c.code));
  }
}

TEST(Mqtt311MappingTest, ConnackReturnCodesMapBack) {
  for (uint8_t code = 0; code <= 5; ++code) {
    EXPECT_EQ(ToConnackReturnCode311(FromConnackReturnCode311(code)), code);
  }
}

TEST(Mqtt311MappingTest, SubackFailureIs0x80) {
  Suback s{.packet_id = 3,
           .reasons = {R::kGrantedQos1, R::kNotAuthorized, R::kTopicFilterInvalid, R::kSuccess,
                       R::kGrantedQos2, R::kQuotaExceeded}};
  EXPECT_EQ(Encoded(s, Version::k311), Hex("90 08 00 03 01 80 80 00 02 80"));
  EXPECT_EQ(Encoded(s, Version::k5), Hex("90 09 00 03 00 01 87 8F 00 02 97"));
}

TEST(Mqtt311MappingTest, UnsubackHasNoReasons) {
  Unsuback u{.packet_id = 11, .reasons = {R::kNoSubscriptionExisted, R::kNotAuthorized}};
  u.properties.reason_string = "x";
  EXPECT_EQ(Encoded(u, Version::k311), Hex("B0 02 00 0B"));
}

// ---------------------------------------------------------------------------------------------
// EncodePublishHeader

TEST(EncodePublishHeaderTest, HeaderPlusPayloadEqualsEncodedPublish) {
  std::vector<Publish> publishes = {RichPublish5(), Publish{.topic = "t", .payload = ""},
                                    Publish{.topic = "a/b",
                                            .payload = std::string(200, 'p'),
                                            .qos = QoS::k2,
                                            .retain = true,
                                            .packet_id = 2}};
  for (Version v : {Version::k311, Version::k5}) {
    for (const Publish& p : publishes) {
      std::string out;
      size_t size = EncodePublishHeader({.topic = p.topic,
                                         .qos = p.qos,
                                         .retain = p.retain,
                                         .dup = p.dup,
                                         .packet_id = p.packet_id,
                                         .properties = &p.properties},
                                        p.payload.size(), v, out);
      out.append(p.payload);
      EXPECT_EQ(out, Encoded(p, v));
      EXPECT_EQ(size, out.size());
    }
  }
}

TEST(EncodePublishHeaderTest, PublishPacketSizeIsWhatEncodePublishHeaderReturns) {
  const uint32_t subscription_ids[] = {1, 300};
  Properties shared = RichPublish5().properties;
  shared.topic_alias.reset();
  shared.message_expiry_interval.reset();
  shared.subscription_identifiers.clear();
  for (Version v : {Version::k311, Version::k5}) {
    for (size_t payload_size : {0u, 100u, 20'000u}) {
      PublishHeader h{.topic = "a/b",
                      .qos = QoS::k2,
                      .packet_id = 7,
                      .properties = &shared,
                      .subscription_identifiers = subscription_ids,
                      .topic_alias = 4,
                      .message_expiry_interval = 9};
      std::string out;
      size_t written = EncodePublishHeader(h, payload_size, v, out);
      EXPECT_EQ(PublishPacketSize(h, payload_size, v), written);
      EXPECT_EQ(written, out.size() + payload_size);
    }
  }
}

TEST(EncodePublishHeaderTest, PerRecipientPropertiesDecodeBack) {
  Properties shared;
  shared.content_type = "json";
  shared.user_properties = kUserProperties;
  const std::string payload = "{\"v\":1}";
  const uint32_t subscription_ids[] = {3, 70'000, kMaxVarInt};

  std::string out = "earlier bytes";
  const size_t before = out.size();
  size_t size = EncodePublishHeader({.topic = "sensors/1",
                                     .qos = QoS::k1,
                                     .packet_id = 42,
                                     .properties = &shared,
                                     .subscription_identifiers = subscription_ids,
                                     .topic_alias = 9,
                                     .message_expiry_interval = 120},
                                    payload.size(), Version::k5, out);
  EXPECT_EQ(size, out.size() - before + payload.size());
  out.append(payload);

  absl::StatusOr<Packet> decoded = DecodeWhole(std::string_view(out).substr(before), Version::k5);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  Publish want{.topic = "sensors/1", .payload = payload, .qos = QoS::k1, .packet_id = 42};
  want.properties = shared;
  want.properties.subscription_identifiers = {3, 70'000, kMaxVarInt};
  want.properties.topic_alias = 9;
  want.properties.message_expiry_interval = 120;
  EXPECT_EQ(std::get<Publish>(*decoded), want);
}

TEST(EncodePublishHeaderTest, AliasWithoutTopicAndNoSharedProperties) {
  std::string out;
  size_t size = EncodePublishHeader({.topic = "", .topic_alias = 1}, 1, Version::k5, out);
  EXPECT_EQ(out, Hex("30 07 00 00 03 23 00 01"));
  EXPECT_EQ(size, out.size() + 1);
}

TEST(EncodePublishHeaderTest, Mqtt311IgnoresPerRecipientProperties) {
  const uint32_t subscription_ids[] = {3};
  std::string out;
  size_t size = EncodePublishHeader({.topic = "t",
                                     .qos = QoS::k1,
                                     .packet_id = 5,
                                     .subscription_identifiers = subscription_ids,
                                     .topic_alias = 9,
                                     .message_expiry_interval = 120},
                                    2, Version::k311, out);
  EXPECT_EQ(out, Hex("32 07 00 01 't' 00 05"));
  EXPECT_EQ(size, out.size() + 2);
}

TEST(EncodePublishHeaderTest, SizeCountsAMultiByteRemainingLength) {
  for (size_t payload_size : {0u, 120u, 125u, 16'400u, 2'100'000u}) {
    std::string out;
    size_t size = EncodePublishHeader({.topic = "t"}, payload_size, Version::k5, out);
    EXPECT_EQ(size, out.size() + payload_size) << payload_size;
    std::string packet = out + std::string(payload_size, 'x');
    absl::StatusOr<std::optional<Frame>> frame = ParseFrame(packet, kMaxPacketBytes);
    ASSERT_TRUE(frame.ok() && frame->has_value()) << payload_size;
    EXPECT_EQ((*frame)->size, packet.size());
  }
}

}  // namespace
}  // namespace mqtt
