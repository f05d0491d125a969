// Tests of mqtt/decoder.cc: every packet type decoded from hand-written bytes for MQTT 3.1.1 and
// 5.0, incremental decoding, and the strict validation, each violation checked for the reason code
// the spec prescribes.
//
// Packets are written as hex byte strings, with ASCII runs in single quotes: "00 04 'MQTT' 05".
// Every well-formed example is checked to frame to exactly its own length, so a miscounted
// Remaining Length in a test fails loudly instead of testing something else.
#include "mqtt/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt/error.h"

namespace mqtt {
namespace {

using R = ReasonCode;

// "10 2B 00 04 'MQTT'" -> the bytes 0x10 0x2B 0x00 0x04 'M' 'Q' 'T' 'T'.
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

// Frames `bytes`, which must hold exactly one whole packet, and decodes it.
absl::StatusOr<Packet> Decode(std::string_view bytes, Version version) {
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(bytes, kMaxPacketBytes);
  if (!frame.ok()) return frame.status();
  if (!frame->has_value()) return absl::InternalError("test bytes hold no whole packet");
  EXPECT_EQ((*frame)->size, bytes.size()) << "test bytes hold more than one packet";
  return DecodePacket(**frame, version);
}

// The reason code with which decoding `bytes` fails; kSuccess when it does not fail.
ReasonCode FailureOf(std::string_view bytes, Version version) {
  absl::StatusOr<Packet> p = Decode(bytes, version);
  return p.ok() ? R::kSuccess : ReasonOf(p.status());
}

template <typename T>
T DecodeAs(std::string_view bytes, Version version) {
  absl::StatusOr<Packet> p = Decode(bytes, version);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*p)) << "decoded as " << PacketTypeName(TypeOf(*p));
  if (!std::holds_alternative<T>(*p)) return T{};
  return std::get<T>(*p);
}

// ---------------------------------------------------------------------------------------------
// CONNECT

// MQTT 5.0 §3.1.2.11 "Variable Header example" (flags 0xCE: user name, password, will QoS 1, will,
// clean start; keep alive 10; Session Expiry Interval 10), followed by a payload with every field.
const std::string kConnect5 =
    Hex("10 2B"
        " 00 04 'MQTT' 05 CE 00 0A"
        " 05 11 00 00 00 0A"  // properties: Session Expiry Interval 10
        " 00 03 'cid'"        // client identifier
        " 02 01 01"           // will properties: Payload Format Indicator 1
        " 00 03 'a/b'"        // will topic
        " 00 02 'hi'"         // will payload
        " 00 04 'user'"       // user name
        " 00 02 'pw'");       // password

// MQTT 3.1.1 §3.1.2.10 "Variable header non normative example", with the same payload.
const std::string kConnect311 =
    Hex("10 22"
        " 00 04 'MQTT' 04 CE 00 0A"
        " 00 03 'cid' 00 03 'a/b' 00 02 'hi' 00 04 'user' 00 02 'pw'");

TEST(DecodeConnectTest, Mqtt5SpecExampleWithEveryField) {
  Connect c = DecodeAs<Connect>(kConnect5, Version::k5);
  Connect want{.version = Version::k5,
               .clean_start = true,
               .keep_alive_s = 10,
               .client_id = "cid",
               .will = Will{.topic = "a/b", .payload = "hi", .qos = QoS::k1, .retain = false},
               .username = "user",
               .password = "pw"};
  want.will->properties.payload_format_indicator = 1;
  want.properties.session_expiry_interval = 10;
  EXPECT_EQ(c, want);
}

TEST(DecodeConnectTest, Mqtt311SpecExampleWithEveryField) {
  Connect c = DecodeAs<Connect>(kConnect311, Version::k311);
  Connect want{.version = Version::k311,
               .clean_start = true,
               .keep_alive_s = 10,
               .client_id = "cid",
               .will = Will{.topic = "a/b", .payload = "hi", .qos = QoS::k1},
               .username = "user",
               .password = "pw"};
  EXPECT_EQ(c, want);
}

TEST(DecodeConnectTest, CarriesItsOwnVersionWhateverTheSessionVersion) {
  EXPECT_EQ(DecodeAs<Connect>(kConnect311, Version::k5).version, Version::k311);
  EXPECT_EQ(DecodeAs<Connect>(kConnect5, Version::k311).version, Version::k5);
}

TEST(DecodeConnectTest, MinimalWithoutWillOrCredentials) {
  // Clean session off, keep alive 60, empty client identifier.
  Connect c = DecodeAs<Connect>(Hex("10 0C 00 04 'MQTT' 04 00 00 3C 00 00"), Version::k311);
  EXPECT_FALSE(c.clean_start);
  EXPECT_EQ(c.keep_alive_s, 60);
  EXPECT_EQ(c.client_id, "");
  EXPECT_FALSE(c.will.has_value());
  EXPECT_FALSE(c.username.has_value());
  EXPECT_FALSE(c.password.has_value());
}

TEST(DecodeConnectTest, Mqtt5AllowsPasswordWithoutUserName) {
  Connect c =
      DecodeAs<Connect>(Hex("10 11 00 04 'MQTT' 05 42 00 00 00 00 00 00 02 'pw'"), Version::k5);
  EXPECT_FALSE(c.username.has_value());
  EXPECT_EQ(c.password, "pw");
}

TEST(DecodeConnectTest, WillRetainAndQos2) {
  // Flags 0x36: will retain, will QoS 2, will, clean start; empty will topic is invalid, so "t".
  Connect c = DecodeAs<Connect>(Hex("10 12 00 04 'MQTT' 04 36 00 00 00 01 'c' 00 01 't' 00 00"),
                                Version::k311);
  ASSERT_TRUE(c.will.has_value());
  EXPECT_EQ(c.will->qos, QoS::k2);
  EXPECT_TRUE(c.will->retain);
  EXPECT_EQ(c.will->topic, "t");
  EXPECT_EQ(c.will->payload, "");
}

TEST(DecodeConnectTest, DecodeConnectAcceptsConnect) {
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(kConnect5, kMaxPacketBytes);
  ASSERT_TRUE(frame.ok() && frame->has_value());
  absl::StatusOr<Connect> c = DecodeConnect(**frame);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->client_id, "cid");
}

TEST(DecodeConnectTest, FirstPacketNotConnectIsProtocolError) {
  const std::string pingreq = Hex("C0 00");
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(pingreq, kMaxPacketBytes);
  ASSERT_TRUE(frame.ok() && frame->has_value());
  absl::StatusOr<Connect> c = DecodeConnect(**frame);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(ReasonOf(c.status()), R::kProtocolError);
}

TEST(DecodeConnectTest, UnsupportedProtocolLevelOrName) {
  for (std::string_view bytes : {
           "10 0C 00 04 'MQTT' 03 02 00 00 00 00",    // level 3
           "10 0C 00 04 'MQTT' 06 02 00 00 00 00",    // level 6
           "10 0E 00 06 'MQIsdp' 04 02 00 00 00 00",  // 3.1's name with 3.1.1's level
           "10 0C 00 04 'MQTX' 04 02 00 00 00 00",    // wrong name
       }) {
    const std::string packet = Hex(bytes);
    absl::StatusOr<std::optional<Frame>> frame = ParseFrame(packet, kMaxPacketBytes);
    ASSERT_TRUE(frame.ok() && frame->has_value()) << bytes;
    absl::StatusOr<Connect> c = DecodeConnect(**frame);
    ASSERT_FALSE(c.ok()) << bytes;
    EXPECT_EQ(ReasonOf(c.status()), R::kUnsupportedProtocolVersion) << bytes << ": " << c.status();
  }
}

TEST(DecodeConnectTest, Mqtt31IsDecodedAs311) {
  const std::string packet = Hex("10 0F 00 06 'MQIsdp' 03 02 00 3C 00 01 'c'");
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(packet, kMaxPacketBytes);
  ASSERT_TRUE(frame.ok() && frame->has_value());
  absl::StatusOr<Connect> c = DecodeConnect(**frame);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->version, Version::k31);
  EXPECT_EQ(c->client_id, "c");
  EXPECT_EQ(c->keep_alive_s, 60);
  EXPECT_TRUE(c->clean_start);
}

TEST(DecodeConnectTest, FlagViolations) {
  struct Case {
    const char* what;
    std::string bytes;
    Version version;
    ReasonCode reason;
  };
  const Case cases[] = {
      {"reserved flag", Hex("10 0C 00 04 'MQTT' 04 03 00 00 00 00"), Version::k311,
       R::kMalformedPacket},
      {"reserved flag 5.0", Hex("10 0D 00 04 'MQTT' 05 01 00 00 00 00 00"), Version::k5,
       R::kMalformedPacket},
      {"will QoS 3", Hex("10 12 00 04 'MQTT' 04 1E 00 00 00 01 'c' 00 01 't' 00 00"), Version::k311,
       R::kMalformedPacket},
      {"will QoS without will", Hex("10 0C 00 04 'MQTT' 04 0A 00 00 00 00"), Version::k311,
       R::kMalformedPacket},
      {"will retain without will", Hex("10 0C 00 04 'MQTT' 04 22 00 00 00 00"), Version::k311,
       R::kMalformedPacket},
      {"password without user name in 3.1.1",
       Hex("10 10 00 04 'MQTT' 04 42 00 00 00 00 00 02 'pw'"), Version::k311, R::kMalformedPacket},
      {"user name flag without user name", Hex("10 0C 00 04 'MQTT' 04 82 00 00 00 00"),
       Version::k311, R::kMalformedPacket},
      {"will flag without will topic", Hex("10 0C 00 04 'MQTT' 04 06 00 00 00 00"), Version::k311,
       R::kMalformedPacket},
      {"trailing byte", Hex("10 0D 00 04 'MQTT' 04 02 00 00 00 00 FF"), Version::k311,
       R::kMalformedPacket},
      {"client id not UTF-8", Hex("10 0E 00 04 'MQTT' 04 02 00 00 00 02 C0 80"), Version::k311,
       R::kMalformedPacket},
      {"will topic with wildcard", Hex("10 12 00 04 'MQTT' 04 06 00 00 00 01 'c' 00 01 '#' 00 00"),
       Version::k311, R::kTopicNameInvalid},
      {"5.0 without property length", Hex("10 0C 00 04 'MQTT' 05 02 00 00 00 00"), Version::k5,
       R::kMalformedPacket},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FailureOf(c.bytes, c.version), c.reason) << c.what;
  }
}

// A 5.0 CONNECT with the given property section (length prefix included) and nothing else.
std::string Connect5WithProperties(std::string_view properties) {
  std::string body = Hex("00 04 'MQTT' 05 02 00 00") + Hex(properties) + Hex("00 00");
  return std::string(1, '\x10') + static_cast<char>(body.size()) + body;
}

// A 5.0 CONNECT with a will carrying the given will property section.
std::string Connect5WithWillProperties(std::string_view properties) {
  std::string body =
      Hex("00 04 'MQTT' 05 06 00 00 00 00 00") + Hex(properties) + Hex("00 01 't' 00 00");
  return std::string(1, '\x10') + static_cast<char>(body.size()) + body;
}

TEST(DecodeConnectTest, AllConnectProperties) {
  Connect c =
      DecodeAs<Connect>(Connect5WithProperties("2E"
                                               " 11 00 00 01 00"   // Session Expiry Interval 256
                                               " 15 00 04 'SCRA'"  // Authentication Method
                                               " 16 00 02 00 FF"   // Authentication Data (binary)
                                               " 17 00"            // Request Problem Information 0
                                               " 19 01"            // Request Response Information 1
                                               " 21 00 14"         // Receive Maximum 20
                                               " 22 00 05"         // Topic Alias Maximum 5
                                               " 27 00 00 10 00"   // Maximum Packet Size 4096
                                               " 26 00 01 'k' 00 01 'v'"    // User Property k=v
                                               " 26 00 01 'k' 00 01 'w'"),  // User Property k=w
                        Version::k5);
  Properties want;
  want.session_expiry_interval = 256;
  want.authentication_method = "SCRA";
  want.authentication_data = std::string("\x00\xFF", 2);
  want.request_problem_information = 0;
  want.request_response_information = 1;
  want.receive_maximum = 20;
  want.topic_alias_maximum = 5;
  want.maximum_packet_size = 4096;
  want.user_properties = {{"k", "v"}, {"k", "w"}};
  EXPECT_EQ(c.properties, want);
}

TEST(DecodeConnectTest, AllWillProperties) {
  Connect c = DecodeAs<Connect>(Connect5WithWillProperties("1F"
                                                           " 01 01"           // Payload Format 1
                                                           " 02 00 00 00 3C"  // Message Expiry 60
                                                           " 03 00 01 'j'"    // Content Type
                                                           " 08 00 01 'r'"    // Response Topic
                                                           " 09 00 01 00"     // Correlation Data
                                                           " 18 00 00 00 1E"  // Will Delay 30
                                                           " 26 00 01 'k' 00 01 'v'"),
                                Version::k5);
  ASSERT_TRUE(c.will.has_value());
  Properties want;
  want.payload_format_indicator = 1;
  want.message_expiry_interval = 60;
  want.content_type = "j";
  want.response_topic = "r";
  want.correlation_data = std::string(1, '\0');
  want.will_delay_interval = 30;
  want.user_properties = {{"k", "v"}};
  EXPECT_EQ(c.will->properties, want);
  EXPECT_EQ(c.properties, Properties{});
}

TEST(DecodeConnectTest, PropertyViolations) {
  struct Case {
    const char* what;
    std::string bytes;
    ReasonCode reason;
  };
  const Case cases[] = {
      {"duplicate Session Expiry Interval",
       Connect5WithProperties("0A 11 00 00 00 01 11 00 00 00 02"), R::kProtocolError},
      {"duplicate Receive Maximum", Connect5WithProperties("06 21 00 01 21 00 01"),
       R::kProtocolError},
      {"Receive Maximum 0", Connect5WithProperties("03 21 00 00"), R::kProtocolError},
      {"Maximum Packet Size 0", Connect5WithProperties("05 27 00 00 00 00"), R::kProtocolError},
      {"Request Problem Information 2", Connect5WithProperties("02 17 02"), R::kProtocolError},
      {"Will Delay Interval outside the will", Connect5WithProperties("05 18 00 00 00 01"),
       R::kProtocolError},
      {"Topic Alias in CONNECT", Connect5WithProperties("03 23 00 01"), R::kProtocolError},
      {"Session Expiry Interval in the will", Connect5WithWillProperties("05 11 00 00 00 01"),
       R::kProtocolError},
      {"Subscription Identifier in the will", Connect5WithWillProperties("02 0B 01"),
       R::kProtocolError},
      {"unknown property 0x04", Connect5WithProperties("02 04 00"), R::kMalformedPacket},
      {"unknown property 0x00", Connect5WithProperties("02 00 00"), R::kMalformedPacket},
      {"unknown property 0x7F", Connect5WithProperties("02 7F 00"), R::kMalformedPacket},
      {"property section longer than the packet", Connect5WithProperties("09 11 00 00 00 01"),
       R::kMalformedPacket},
      {"property value cut by the section length", Connect5WithProperties("03 11 00 00"),
       R::kMalformedPacket},
      {"user property value not UTF-8", Connect5WithProperties("07 26 00 01 'k' 00 01 FF"),
       R::kMalformedPacket},
      {"user property key with U+0000", Connect5WithProperties("07 26 00 01 00 00 01 'v'"),
       R::kMalformedPacket},
      {"Authentication Data without Authentication Method",
       Connect5WithProperties("04 16 00 01 'x'"), R::kProtocolError},
      {"Response Topic with a wildcard in the will", Connect5WithWillProperties("04 08 00 01 '#'"),
       R::kProtocolError},
      {"empty Response Topic in the will", Connect5WithWillProperties("03 08 00 00"),
       R::kProtocolError},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FailureOf(c.bytes, Version::k5), c.reason) << c.what;
  }
}

// ---------------------------------------------------------------------------------------------
// CONNACK

TEST(DecodeConnackTest, Mqtt311) {
  Connack c = DecodeAs<Connack>(Hex("20 02 01 00"), Version::k311);
  EXPECT_TRUE(c.session_present);
  EXPECT_EQ(c.reason, R::kSuccess);
}

TEST(DecodeConnackTest, Mqtt311ReturnCodesMapToReasonCodes) {
  EXPECT_EQ(DecodeAs<Connack>(Hex("20 02 00 01"), Version::k311).reason,
            R::kUnsupportedProtocolVersion);
  EXPECT_EQ(DecodeAs<Connack>(Hex("20 02 00 02"), Version::k311).reason,
            R::kClientIdentifierNotValid);
  EXPECT_EQ(DecodeAs<Connack>(Hex("20 02 00 03"), Version::k311).reason, R::kServerUnavailable);
  EXPECT_EQ(DecodeAs<Connack>(Hex("20 02 00 04"), Version::k311).reason, R::kBadUserNameOrPassword);
  EXPECT_EQ(DecodeAs<Connack>(Hex("20 02 00 05"), Version::k311).reason, R::kNotAuthorized);
}

TEST(DecodeConnackTest, Mqtt5WithEveryConnackProperty) {
  Connack c = DecodeAs<Connack>(Hex("20 43 00 00 40"
                                    " 11 00 00 00 0A"          // Session Expiry Interval
                                    " 12 00 02 'id'"           // Assigned Client Identifier
                                    " 13 00 1E"                // Server Keep Alive 30
                                    " 15 00 01 'm'"            // Authentication Method
                                    " 16 00 01 'd'"            // Authentication Data
                                    " 1A 00 02 'ri'"           // Response Information
                                    " 1C 00 02 'sr'"           // Server Reference
                                    " 1F 00 02 'rs'"           // Reason String
                                    " 21 00 0A"                // Receive Maximum 10
                                    " 22 00 0B"                // Topic Alias Maximum 11
                                    " 24 01"                   // Maximum QoS 1
                                    " 25 00"                   // Retain Available 0
                                    " 26 00 01 'k' 00 01 'v'"  // User Property
                                    " 27 00 01 00 00"          // Maximum Packet Size 65536
                                    " 28 00"                   // Wildcard Subscription Available
                                    " 29 01"                   // Subscription Identifiers Avail.
                                    " 2A 00"),                 // Shared Subscription Available
                                Version::k5);
  Properties want;
  want.session_expiry_interval = 10;
  want.assigned_client_identifier = "id";
  want.server_keep_alive = 30;
  want.authentication_method = "m";
  want.authentication_data = "d";
  want.response_information = "ri";
  want.server_reference = "sr";
  want.reason_string = "rs";
  want.receive_maximum = 10;
  want.topic_alias_maximum = 11;
  want.maximum_qos = 1;
  want.retain_available = 0;
  want.user_properties = {{"k", "v"}};
  want.maximum_packet_size = 65536;
  want.wildcard_subscription_available = 0;
  want.subscription_identifier_available = 1;
  want.shared_subscription_available = 0;
  EXPECT_EQ(c.properties, want);
  EXPECT_FALSE(c.session_present);
  EXPECT_EQ(c.reason, R::kSuccess);
}

TEST(DecodeConnackTest, Mqtt5ErrorReason) {
  Connack c = DecodeAs<Connack>(Hex("20 03 00 87 00"), Version::k5);
  EXPECT_EQ(c.reason, R::kNotAuthorized);
}

TEST(DecodeConnackTest, Violations) {
  EXPECT_EQ(FailureOf(Hex("20 02 02 00"), Version::k311), R::kMalformedPacket);     // reserved flag
  EXPECT_EQ(FailureOf(Hex("20 03 00 00 00"), Version::k311), R::kMalformedPacket);  // trailing
  EXPECT_EQ(FailureOf(Hex("20 02 00 00"), Version::k5), R::kMalformedPacket);       // no properties
  EXPECT_EQ(FailureOf(Hex("20 05 00 00 02 24 02"), Version::k5), R::kProtocolError);  // max QoS 2
  EXPECT_EQ(FailureOf(Hex("20 05 00 00 02 25 02"), Version::k5), R::kProtocolError);  // retain 2
  EXPECT_EQ(FailureOf(Hex("20 05 00 00 02 01 01"), Version::k5), R::kProtocolError);  // PFI
  // A reason code that is not a CONNACK reason code (0x04 belongs to DISCONNECT).
  EXPECT_EQ(FailureOf(Hex("20 03 00 04 00"), Version::k5), R::kProtocolError);
  // Return codes 6 to 255 are reserved in 3.1.1 (§3.2.2.3).
  EXPECT_EQ(FailureOf(Hex("20 02 00 06"), Version::k311), R::kMalformedPacket);
}

// ---------------------------------------------------------------------------------------------
// PUBLISH

TEST(DecodePublishTest, Mqtt311Qos1) {
  Publish p = DecodeAs<Publish>(Hex("32 0A 00 03 'a/b' 00 0A 'hey'"), Version::k311);
  EXPECT_EQ(p, (Publish{.topic = "a/b", .payload = "hey", .qos = QoS::k1, .packet_id = 10}));
}

TEST(DecodePublishTest, Mqtt311Qos0RetainedAndEmptyPayload) {
  Publish p = DecodeAs<Publish>(Hex("31 03 00 01 't'"), Version::k311);
  EXPECT_EQ(p, (Publish{.topic = "t", .retain = true}));
}

TEST(DecodePublishTest, Mqtt311Qos2Dup) {
  Publish p = DecodeAs<Publish>(Hex("3C 07 00 01 't' FF FF 00 01"), Version::k311);
  EXPECT_EQ(p, (Publish{.topic = "t",
                        .payload = std::string("\x00\x01", 2),
                        .qos = QoS::k2,
                        .dup = true,
                        .packet_id = 0xFFFF}));
}

TEST(DecodePublishTest, Mqtt5WithEveryPublishProperty) {
  Publish p = DecodeAs<Publish>(Hex("3C 2D 00 03 'a/b' 00 0B 22"
                                    " 01 01"                   // Payload Format Indicator 1
                                    " 02 00 00 00 3C"          // Message Expiry Interval 60
                                    " 03 00 01 'j'"            // Content Type
                                    " 08 00 01 'r'"            // Response Topic
                                    " 09 00 01 00"             // Correlation Data
                                    " 23 00 05"                // Topic Alias 5
                                    " 0B 02"                   // Subscription Identifier 2
                                    " 0B 81 01"                // Subscription Identifier 129
                                    " 26 00 01 'k' 00 01 'v'"  // User Property
                                    " 'hey'"),
                                Version::k5);
  Publish want{.topic = "a/b", .payload = "hey", .qos = QoS::k2, .dup = true, .packet_id = 11};
  want.properties.payload_format_indicator = 1;
  want.properties.message_expiry_interval = 60;
  want.properties.content_type = "j";
  want.properties.response_topic = "r";
  want.properties.correlation_data = std::string(1, '\0');
  want.properties.topic_alias = 5;
  want.properties.subscription_identifiers = {2, 129};
  want.properties.user_properties = {{"k", "v"}};
  EXPECT_EQ(p, want);
}

TEST(DecodePublishTest, Mqtt5EmptyTopicWithTopicAlias) {
  Publish p = DecodeAs<Publish>(Hex("30 07 00 00 03 23 00 07 'x'"), Version::k5);
  EXPECT_EQ(p.topic, "");
  EXPECT_EQ(p.properties.topic_alias, 7);
  EXPECT_EQ(p.payload, "x");
}

TEST(DecodePublishTest, Violations) {
  struct Case {
    const char* what;
    std::string bytes;
    Version version;
    ReasonCode reason;
  };
  const Case cases[] = {
      {"QoS 0 with DUP", Hex("38 03 00 01 't'"), Version::k311, R::kMalformedPacket},
      {"QoS 3", Hex("36 05 00 01 't' 00 01"), Version::k311, R::kMalformedPacket},
      {"packet identifier 0", Hex("32 05 00 01 't' 00 00"), Version::k311, R::kProtocolError},
      {"'#' in the topic", Hex("30 05 00 03 'a/#'"), Version::k311, R::kTopicNameInvalid},
      {"'+' in the topic 5.0", Hex("30 06 00 03 '+/b' 00"), Version::k5, R::kTopicNameInvalid},
      {"empty topic in 3.1.1", Hex("30 02 00 00"), Version::k311, R::kTopicNameInvalid},
      {"empty topic without alias", Hex("30 03 00 00 00"), Version::k5, R::kTopicNameInvalid},
      {"topic not UTF-8", Hex("30 04 00 02 C3 28"), Version::k311, R::kMalformedPacket},
      {"topic with U+0000", Hex("30 04 00 02 'a' 00"), Version::k311, R::kMalformedPacket},
      {"topic with a surrogate", Hex("30 05 00 03 ED A0 80"), Version::k311, R::kMalformedPacket},
      {"topic longer than the packet", Hex("30 03 00 05 'a'"), Version::k311, R::kMalformedPacket},
      {"topic alias 0", Hex("30 07 00 01 't' 03 23 00 00"), Version::k5, R::kTopicAliasInvalid},
      {"duplicate topic alias", Hex("30 0A 00 01 't' 06 23 00 01 23 00 02"), Version::k5,
       R::kProtocolError},
      {"subscription identifier 0", Hex("30 06 00 01 't' 02 0B 00"), Version::k5,
       R::kProtocolError},
      {"non-minimal subscription identifier", Hex("30 07 00 01 't' 03 0B 81 00"), Version::k5,
       R::kMalformedPacket},
      {"non-minimal property length", Hex("30 05 00 01 't' 80 00"), Version::k5,
       R::kMalformedPacket},
      {"Session Expiry Interval in PUBLISH", Hex("30 09 00 01 't' 05 11 00 00 00 01"), Version::k5,
       R::kProtocolError},
      {"Payload Format Indicator 2", Hex("30 06 00 01 't' 02 01 02"), Version::k5,
       R::kProtocolError},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FailureOf(c.bytes, c.version), c.reason) << c.what;
  }
}

// ---------------------------------------------------------------------------------------------
// PUBACK, PUBREC, PUBREL, PUBCOMP

TEST(DecodeAckTest, EveryAckTypeIn311) {
  EXPECT_EQ(DecodeAs<Puback>(Hex("40 02 00 07"), Version::k311), Puback{.packet_id = 7});
  EXPECT_EQ(DecodeAs<Pubrec>(Hex("50 02 01 00"), Version::k311), Pubrec{.packet_id = 256});
  EXPECT_EQ(DecodeAs<Pubrel>(Hex("62 02 00 07"), Version::k311), Pubrel{.packet_id = 7});
  EXPECT_EQ(DecodeAs<Pubcomp>(Hex("70 02 00 07"), Version::k311), Pubcomp{.packet_id = 7});
}

TEST(DecodeAckTest, DupOnAResentPubrelSubscribeOrUnsubscribeOnlyIn31) {
  // MQTT 3.1 lets a client set DUP when it sends one of these again; 3.1.1 and 5.0 do not.
  for (std::string_view bytes :
       {"6A 02 00 07", "8A 06 00 01 00 01 'a' 00", "AA 05 00 01 00 01 'a'"}) {
    EXPECT_EQ(FailureOf(Hex(bytes), Version::k31), R::kSuccess) << bytes;
    EXPECT_EQ(FailureOf(Hex(bytes), Version::k311), R::kMalformedPacket) << bytes;
    EXPECT_EQ(FailureOf(Hex(bytes), Version::k5), R::kMalformedPacket) << bytes;
  }
  EXPECT_EQ(DecodeAs<Pubrel>(Hex("6A 02 00 07"), Version::k31), Pubrel{.packet_id = 7});
}

TEST(DecodeAckTest, Mqtt5ShortFormsMeanSuccess) {
  // §3.4.2.1: the reason code may be left out for success, the properties when there are none.
  EXPECT_EQ(DecodeAs<Puback>(Hex("40 02 00 07"), Version::k5), Puback{.packet_id = 7});
  EXPECT_EQ(DecodeAs<Pubrec>(Hex("50 03 00 07 10"), Version::k5),
            (Pubrec{.packet_id = 7, .reason = R::kNoMatchingSubscribers}));
  EXPECT_EQ(DecodeAs<Pubrel>(Hex("62 04 00 07 92 00"), Version::k5),
            (Pubrel{.packet_id = 7, .reason = R::kPacketIdentifierNotFound}));
  EXPECT_EQ(DecodeAs<Pubcomp>(Hex("70 03 00 07 00"), Version::k5), Pubcomp{.packet_id = 7});
}

TEST(DecodeAckTest, Mqtt5WithProperties) {
  Puback a =
      DecodeAs<Puback>(Hex("40 10 00 07 10 0C 1F 00 02 'no' 26 00 01 'k' 00 01 'v'"), Version::k5);
  EXPECT_EQ(a.packet_id, 7);
  EXPECT_EQ(a.reason, R::kNoMatchingSubscribers);
  EXPECT_EQ(a.properties.reason_string, "no");
  EXPECT_EQ(a.properties.user_properties, (UserProperties{{"k", "v"}}));
}

TEST(DecodeAckTest, Violations) {
  struct Case {
    const char* what;
    std::string bytes;
    Version version;
    ReasonCode reason;
  };
  const Case cases[] = {
      {"PUBACK packet identifier 0", Hex("40 02 00 00"), Version::k5, R::kProtocolError},
      {"PUBREL packet identifier 0", Hex("62 02 00 00"), Version::k311, R::kProtocolError},
      {"PUBREL with flags 0", Hex("60 02 00 01"), Version::k311, R::kMalformedPacket},
      {"PUBACK with flags 2", Hex("42 02 00 01"), Version::k311, R::kMalformedPacket},
      {"PUBCOMP too short", Hex("70 01 00"), Version::k311, R::kMalformedPacket},
      {"3.1.1 PUBACK with a reason code", Hex("40 03 00 01 00"), Version::k311,
       R::kMalformedPacket},
      {"PUBACK reason 0x92", Hex("40 03 00 01 92"), Version::k5, R::kProtocolError},
      {"PUBREL reason 0x10", Hex("62 03 00 01 10"), Version::k5, R::kProtocolError},
      {"PUBACK reason 0x04", Hex("40 03 00 01 04"), Version::k5, R::kProtocolError},
      {"Topic Alias in PUBACK", Hex("40 07 00 01 00 03 23 00 01"), Version::k5, R::kProtocolError},
      {"duplicate Reason String", Hex("40 0C 00 01 00 08 1F 00 01 'a' 1F 00 01 'b'"), Version::k5,
       R::kProtocolError},
      {"trailing byte after properties", Hex("40 05 00 01 00 00 00"), Version::k5,
       R::kMalformedPacket},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FailureOf(c.bytes, c.version), c.reason) << c.what;
  }
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK

TEST(DecodeSubscribeTest, Mqtt311) {
  Subscribe s = DecodeAs<Subscribe>(Hex("82 0C 00 0A 00 03 'a/b' 01 00 01 '#' 02"), Version::k311);
  EXPECT_EQ(s, (Subscribe{.packet_id = 10,
                          .topics = {{"a/b", {.qos = QoS::k1}}, {"#", {.qos = QoS::k2}}}}));
}

TEST(DecodeSubscribeTest, Mqtt5OptionsAndProperties) {
  Subscribe s = DecodeAs<Subscribe>(Hex("82 16 00 0A 09"
                                        " 0B 05"                   // Subscription Identifier 5
                                        " 26 00 01 'k' 00 01 'v'"  // User Property
                                        " 00 03 'a/b' 2D"  // retain handling 2, RAP, NL, QoS 1
                                        " 00 01 'x' 12"),  // retain handling 1, QoS 2
                                    Version::k5);
  Subscribe want{
      .packet_id = 10,
      .topics = {
          {"a/b",
           {.qos = QoS::k1, .no_local = true, .retain_as_published = true, .retain_handling = 2}},
          {"x", {.qos = QoS::k2, .retain_handling = 1}}}};
  want.properties.subscription_identifiers = {5};
  want.properties.user_properties = {{"k", "v"}};
  EXPECT_EQ(s, want);
}

TEST(DecodeSubscribeTest, Mqtt5SharedSubscription) {
  Subscribe s = DecodeAs<Subscribe>(Hex("82 10 00 01 00 00 0A '$share/g/a' 09"), Version::k5);
  ASSERT_EQ(s.topics.size(), 1u);
  EXPECT_EQ(s.topics[0].filter, "$share/g/a");
  EXPECT_EQ(s.topics[0].options,
            (SubscriptionOptions{.qos = QoS::k1, .retain_as_published = true}));
}

TEST(DecodeSubscribeTest, LeavesFilterRulesToTheBroker) {
  // An invalid filter is answered per filter in SUBACK (0x8F), and No Local on a shared
  // subscription is judged with the parsed filter: both are the broker's, not the codec's.
  Subscribe s = DecodeAs<Subscribe>(Hex("82 18 00 01 00 00 05 'a/#/b' 00 00 0A '$share/g/a' 04"),
                                    Version::k5);
  ASSERT_EQ(s.topics.size(), 2u);
  EXPECT_EQ(s.topics[0].filter, "a/#/b");
  EXPECT_EQ(s.topics[1].filter, "$share/g/a");
  EXPECT_TRUE(s.topics[1].options.no_local);
}

TEST(DecodeSubscribeTest, Violations) {
  struct Case {
    const char* what;
    std::string bytes;
    Version version;
    ReasonCode reason;
  };
  const Case cases[] = {
      {"flags 0", Hex("80 06 00 01 00 01 'a' 00"), Version::k311, R::kMalformedPacket},
      {"packet identifier 0", Hex("82 06 00 00 00 01 'a' 00"), Version::k311, R::kProtocolError},
      {"no topics 3.1.1", Hex("82 02 00 01"), Version::k311, R::kProtocolError},
      {"no topics 5.0", Hex("82 03 00 01 00"), Version::k5, R::kProtocolError},
      {"topic without options", Hex("82 05 00 01 00 01 'a'"), Version::k311, R::kMalformedPacket},
      {"3.1.1 reserved option bit 2", Hex("82 06 00 01 00 01 'a' 04"), Version::k311,
       R::kMalformedPacket},
      {"3.1.1 reserved option bit 7", Hex("82 06 00 01 00 01 'a' 80"), Version::k311,
       R::kMalformedPacket},
      {"5.0 reserved option bit 6", Hex("82 07 00 01 00 00 01 'a' 40"), Version::k5,
       R::kMalformedPacket},
      {"QoS 3", Hex("82 07 00 01 00 00 01 'a' 03"), Version::k5, R::kMalformedPacket},
      {"retain handling 3", Hex("82 07 00 01 00 00 01 'a' 30"), Version::k5, R::kProtocolError},
      {"subscription identifier 0", Hex("82 09 00 01 02 0B 00 00 01 'a' 00"), Version::k5,
       R::kProtocolError},
      {"two subscription identifiers", Hex("82 0B 00 01 04 0B 01 0B 02 00 01 'a' 00"), Version::k5,
       R::kProtocolError},
      {"Topic Alias in SUBSCRIBE", Hex("82 0A 00 01 03 23 00 01 00 01 'a' 00"), Version::k5,
       R::kProtocolError},
      {"filter not UTF-8", Hex("82 06 00 01 00 01 FF 00"), Version::k311, R::kMalformedPacket},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FailureOf(c.bytes, c.version), c.reason) << c.what;
  }
}

TEST(DecodeSubackTest, Mqtt311) {
  Suback s = DecodeAs<Suback>(Hex("90 05 00 0A 00 01 80"), Version::k311);
  EXPECT_EQ(s, (Suback{.packet_id = 10,
                       .reasons = {R::kSuccess, R::kGrantedQos1, R::kUnspecifiedError}}));
}

TEST(DecodeSubackTest, Mqtt5) {
  Suback s = DecodeAs<Suback>(Hex("90 0A 00 0A 05 1F 00 02 'no' 02 87"), Version::k5);
  Suback want{.packet_id = 10, .reasons = {R::kGrantedQos2, R::kNotAuthorized}};
  want.properties.reason_string = "no";
  EXPECT_EQ(s, want);
}

TEST(DecodeSubackTest, Violations) {
  // 3.1.1 knows only 0x00, 0x01, 0x02 and 0x80 (§3.9.3).
  EXPECT_EQ(FailureOf(Hex("90 03 00 0A 87"), Version::k311), R::kMalformedPacket);
  EXPECT_EQ(FailureOf(Hex("90 03 00 0A 03"), Version::k311), R::kMalformedPacket);
  // 0x10 is not a SUBACK reason code.
  EXPECT_EQ(FailureOf(Hex("90 04 00 0A 00 10"), Version::k5), R::kProtocolError);
  EXPECT_EQ(FailureOf(Hex("90 03 00 00 00"), Version::k311), R::kProtocolError);  // id 0
  // A SUBACK answers at least one topic filter.
  EXPECT_EQ(FailureOf(Hex("90 02 00 0A"), Version::k311), R::kProtocolError);
  EXPECT_EQ(FailureOf(Hex("90 03 00 0A 00"), Version::k5), R::kProtocolError);
}

TEST(DecodeUnsubscribeTest, Mqtt311) {
  Unsubscribe u = DecodeAs<Unsubscribe>(Hex("A2 0A 00 0B 00 03 'a/b' 00 01 '#'"), Version::k311);
  EXPECT_EQ(u, (Unsubscribe{.packet_id = 11, .filters = {"a/b", "#"}}));
}

TEST(DecodeUnsubscribeTest, Mqtt5) {
  Unsubscribe u =
      DecodeAs<Unsubscribe>(Hex("A2 0F 00 0B 07 26 00 01 'k' 00 01 'v' 00 03 'a/b'"), Version::k5);
  Unsubscribe want{.packet_id = 11, .filters = {"a/b"}};
  want.properties.user_properties = {{"k", "v"}};
  EXPECT_EQ(u, want);
}

TEST(DecodeUnsubscribeTest, Violations) {
  EXPECT_EQ(FailureOf(Hex("A2 02 00 0B"), Version::k311), R::kProtocolError);   // no filters
  EXPECT_EQ(FailureOf(Hex("A2 03 00 0B 00"), Version::k5), R::kProtocolError);  // no filters
  EXPECT_EQ(FailureOf(Hex("A0 05 00 0B 00 01 'a'"), Version::k311), R::kMalformedPacket);
  EXPECT_EQ(FailureOf(Hex("A2 05 00 00 00 01 'a'"), Version::k311), R::kProtocolError);
  EXPECT_EQ(FailureOf(Hex("A2 04 00 0B 00 05"), Version::k311), R::kMalformedPacket);
  // Reason String is for acknowledgements only.
  EXPECT_EQ(FailureOf(Hex("A2 0A 00 0B 04 1F 00 01 'x' 00 01 'a'"), Version::k5),
            R::kProtocolError);
}

TEST(DecodeUnsubackTest, Mqtt311HasNoReasons) {
  EXPECT_EQ(DecodeAs<Unsuback>(Hex("B0 02 00 0B"), Version::k311), Unsuback{.packet_id = 11});
  EXPECT_EQ(FailureOf(Hex("B0 03 00 0B 00"), Version::k311), R::kMalformedPacket);
}

TEST(DecodeUnsubackTest, Mqtt5) {
  Unsuback u = DecodeAs<Unsuback>(Hex("B0 05 00 0B 00 00 11"), Version::k5);
  EXPECT_EQ(u, (Unsuback{.packet_id = 11, .reasons = {R::kSuccess, R::kNoSubscriptionExisted}}));
}

TEST(DecodeUnsubackTest, Mqtt5Violations) {
  // 0x01 is not an UNSUBACK reason code.
  EXPECT_EQ(FailureOf(Hex("B0 04 00 0B 00 01"), Version::k5), R::kProtocolError);
  EXPECT_EQ(FailureOf(Hex("B0 03 00 0B 00"), Version::k5), R::kProtocolError);  // no reasons
}

// ---------------------------------------------------------------------------------------------
// PINGREQ, PINGRESP, DISCONNECT, AUTH

TEST(DecodePingTest, BothVersions) {
  for (Version v : {Version::k311, Version::k5}) {
    EXPECT_EQ(DecodeAs<Pingreq>(Hex("C0 00"), v), Pingreq{});
    EXPECT_EQ(DecodeAs<Pingresp>(Hex("D0 00"), v), Pingresp{});
  }
}

TEST(DecodePingTest, TrailingBytesAreMalformed) {
  EXPECT_EQ(FailureOf(Hex("C0 01 00"), Version::k5), R::kMalformedPacket);
  EXPECT_EQ(FailureOf(Hex("D0 01 00"), Version::k311), R::kMalformedPacket);
}

TEST(DecodePingTest, ReservedFlagsAreMalformed) {
  EXPECT_EQ(FailureOf(Hex("C1 00"), Version::k5), R::kMalformedPacket);
  EXPECT_EQ(FailureOf(Hex("D8 00"), Version::k311), R::kMalformedPacket);
}

TEST(DecodeDisconnectTest, Mqtt311) {
  EXPECT_EQ(DecodeAs<Disconnect>(Hex("E0 00"), Version::k311), Disconnect{});
  EXPECT_EQ(FailureOf(Hex("E0 01 00"), Version::k311), R::kMalformedPacket);
}

TEST(DecodeDisconnectTest, Mqtt5) {
  EXPECT_EQ(DecodeAs<Disconnect>(Hex("E0 00"), Version::k5), Disconnect{});
  EXPECT_EQ(DecodeAs<Disconnect>(Hex("E0 01 04"), Version::k5),
            Disconnect{.reason = R::kDisconnectWithWill});
  Disconnect d = DecodeAs<Disconnect>(Hex("E0 10 8E 0E 11 00 00 00 00 1F 00 02 'by' 1C 00 01 's'"),
                                      Version::k5);
  Disconnect want{.reason = R::kSessionTakenOver};
  want.properties.session_expiry_interval = 0;
  want.properties.reason_string = "by";
  want.properties.server_reference = "s";
  EXPECT_EQ(d, want);
}

TEST(DecodeDisconnectTest, Mqtt5Violations) {
  // Topic Alias does not belong in DISCONNECT.
  EXPECT_EQ(FailureOf(Hex("E0 05 00 03 23 00 01"), Version::k5), R::kProtocolError);
  // 0x18 (Continue authentication) is an AUTH reason code.
  EXPECT_EQ(FailureOf(Hex("E0 01 18"), Version::k5), R::kProtocolError);
  EXPECT_EQ(FailureOf(Hex("E1 00"), Version::k5), R::kMalformedPacket);
}

TEST(DecodeAuthTest, Mqtt5) {
  EXPECT_EQ(DecodeAs<Auth>(Hex("F0 00"), Version::k5), Auth{});
  Auth a = DecodeAs<Auth>(Hex("F0 0E 18 0C 15 00 04 'SCRA' 16 00 02 01 02"), Version::k5);
  Auth want{.reason = R::kContinueAuthentication};
  want.properties.authentication_method = "SCRA";
  want.properties.authentication_data = "\x01\x02";
  EXPECT_EQ(a, want);
}

TEST(DecodeAuthTest, Violations) {
  EXPECT_EQ(FailureOf(Hex("F0 00"), Version::k311), R::kMalformedPacket);
  // Only 0x00, 0x18 and 0x19 are AUTH reason codes.
  EXPECT_EQ(FailureOf(Hex("F0 01 87"), Version::k5), R::kProtocolError);
  // Session Expiry Interval does not belong in AUTH.
  EXPECT_EQ(FailureOf(Hex("F0 07 18 05 11 00 00 00 01"), Version::k5), R::kProtocolError);
}

// ---------------------------------------------------------------------------------------------
// Reason codes: each packet accepts exactly the codes its own section lists.

TEST(DecodeReasonCodeTest, EachPacketAcceptsExactlyItsOwnReasonCodes) {
  struct Case {
    const char* packet;
    const char* before;  // the bytes before the reason code
    const char* after;   // the bytes after it
    std::vector<int> valid;
  };
  const std::vector<int> pub_ack = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
  const Case cases[] = {
      {"CONNACK (5.0 §3.2.2.2)", "20 03 00", "00", {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                                    0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                                    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}},
      {"PUBACK (5.0 §3.4.2.1)", "40 03 00 01", "", pub_ack},
      {"PUBREC (5.0 §3.5.2.1)", "50 03 00 01", "", pub_ack},
      {"PUBREL (5.0 §3.6.2.1)", "62 03 00 01", "", {0x00, 0x92}},
      {"PUBCOMP (5.0 §3.7.2.1)", "70 03 00 01", "", {0x00, 0x92}},
      {"SUBACK (5.0 §3.9.3)",
       "90 04 00 01 00",
       "",
       {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}},
      {"UNSUBACK (5.0 §3.11.3)", "B0 04 00 01 00", "", {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}},
      {"DISCONNECT (5.0 §3.14.2.1)", "E0 01", "", {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89,
                                                   0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
                                                   0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C,
                                                   0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}},
      {"AUTH (5.0 §3.15.2.1)", "F0 01", "", {0x00, 0x18, 0x19}},
  };
  for (const Case& c : cases) {
    for (int code = 0; code <= 0xFF; ++code) {
      std::string bytes = Hex(c.before) + static_cast<char>(code) + Hex(c.after);
      bool valid = std::find(c.valid.begin(), c.valid.end(), code) != c.valid.end();
      EXPECT_EQ(FailureOf(bytes, Version::k5), valid ? R::kSuccess : R::kProtocolError)
          << c.packet << " with reason 0x" << std::hex << code;
    }
  }
}

TEST(DecodeReasonCodeTest, Mqtt311ReturnCodes) {
  for (int code = 0; code <= 0xFF; ++code) {
    bool connack_valid = code <= 5;
    EXPECT_EQ(FailureOf(Hex("20 02 00") + static_cast<char>(code), Version::k311),
              connack_valid ? R::kSuccess : R::kMalformedPacket)
        << "CONNACK return code " << code;
    bool suback_valid = code <= 2 || code == 0x80;
    EXPECT_EQ(FailureOf(Hex("90 03 00 01") + static_cast<char>(code), Version::k311),
              suback_valid ? R::kSuccess : R::kMalformedPacket)
        << "SUBACK return code " << code;
  }
}

TEST(DecodeReasonCodeTest, RefusedConnectionHasNoSession) {
  // 5.0 §3.2.2.1.1 and 3.1.1 §3.2.2.2: Session Present must be 0 with a non-zero code.
  EXPECT_EQ(FailureOf(Hex("20 02 01 05"), Version::k311), R::kProtocolError);
  EXPECT_EQ(FailureOf(Hex("20 03 01 87 00"), Version::k5), R::kProtocolError);
  EXPECT_EQ(FailureOf(Hex("20 03 01 00 00"), Version::k5), R::kSuccess);
}

// ---------------------------------------------------------------------------------------------
// ParseFrame

TEST(ParseFrameTest, EveryStrictPrefixIsIncomplete) {
  for (const std::string& packet : {kConnect5, kConnect311, Hex("C0 00")}) {
    for (size_t n = 0; n < packet.size(); ++n) {
      absl::StatusOr<std::optional<Frame>> frame =
          ParseFrame(std::string_view(packet).substr(0, n), kMaxPacketBytes);
      ASSERT_TRUE(frame.ok()) << n << ": " << frame.status();
      EXPECT_FALSE(frame->has_value()) << "complete after " << n << " of " << packet.size();
    }
  }
}

TEST(ParseFrameTest, FindsThePacketAtTheStartAndIgnoresTheRest) {
  std::string data = kConnect311 + Hex("C0 00");
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(data, kMaxPacketBytes);
  ASSERT_TRUE(frame.ok() && frame->has_value());
  EXPECT_EQ((*frame)->type(), PacketType::kConnect);
  EXPECT_EQ((*frame)->flags(), 0);
  EXPECT_EQ((*frame)->size, kConnect311.size());
  EXPECT_EQ((*frame)->body, std::string_view(kConnect311).substr(2));
}

TEST(ParseFrameTest, MultiByteRemainingLength) {
  // 321 = 0xC1 0x02: a 321-byte payload with topic "t" and no packet identifier is 324 bytes.
  std::string packet = Hex("30 C4 02 00 01 't'") + std::string(321, 'x');
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(packet, kMaxPacketBytes);
  ASSERT_TRUE(frame.ok() && frame->has_value());
  EXPECT_EQ((*frame)->body.size(), 324u);
  EXPECT_EQ((*frame)->size, 327u);
}

TEST(ParseFrameTest, RemainingLengthLongerThanFourBytes) {
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(Hex("30 FF FF FF FF 01"), 1u << 31);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(ReasonOf(frame.status()), R::kMalformedPacket);
  // Known as soon as the fifth length byte would be needed.
  frame = ParseFrame(Hex("30 80 80 80 80"), 1u << 31);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(ReasonOf(frame.status()), R::kMalformedPacket);
}

TEST(ParseFrameTest, LargestRemainingLengthIsAccepted) {
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(Hex("30 FF FF FF 7F"), kMaxPacketBytes);
  ASSERT_TRUE(frame.ok()) << frame.status();
  EXPECT_FALSE(frame->has_value());
}

TEST(ParseFrameTest, NonMinimalRemainingLength) {
  for (std::string_view bytes : {"C0 80 00", "30 81 00 00 01 't'", "30 80 80 00"}) {
    absl::StatusOr<std::optional<Frame>> frame = ParseFrame(Hex(bytes), kMaxPacketBytes);
    ASSERT_FALSE(frame.ok()) << bytes;
    EXPECT_EQ(ReasonOf(frame.status()), R::kMalformedPacket) << bytes;
  }
}

TEST(ParseFrameTest, ReservedTypeAndFlags) {
  for (std::string_view bytes : {"00 00", "0F 00", "36 00", "60 00", "80 00", "A0 00", "13 00",
                                 "22 00", "C2 00", "E4 00", "F8 00", "82", "62"}) {
    absl::StatusOr<std::optional<Frame>> frame = ParseFrame(Hex(bytes), kMaxPacketBytes);
    // "82" and "62" carry valid flags: they are merely incomplete.
    if (bytes.size() == 2) {
      ASSERT_TRUE(frame.ok()) << bytes;
      EXPECT_FALSE(frame->has_value());
      continue;
    }
    ASSERT_FALSE(frame.ok()) << bytes;
    EXPECT_EQ(ReasonOf(frame.status()), R::kMalformedPacket) << bytes;
  }
}

TEST(ParseFrameTest, TooLargeIsReportedBeforeTheBodyArrives) {
  // A PUBLISH announcing 1000 bytes, of which none have arrived, against a limit of 100.
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(Hex("30 E8 07"), 100);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(ReasonOf(frame.status()), R::kPacketTooLarge);
}

TEST(ParseFrameTest, MaxSizeCountsTheWholePacket) {
  // "C0 00" is two bytes: allowed at a limit of 2, too large at 1.
  absl::StatusOr<std::optional<Frame>> frame = ParseFrame(Hex("C0 00"), 2);
  ASSERT_TRUE(frame.ok() && frame->has_value());
  frame = ParseFrame(Hex("C0 00"), 1);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(ReasonOf(frame.status()), R::kPacketTooLarge);
}

// ---------------------------------------------------------------------------------------------
// StreamDecoder

TEST(StreamDecoderTest, PacketFedOneByteAtATime) {
  StreamDecoder decoder;
  for (size_t i = 0; i + 1 < kConnect5.size(); ++i) {
    decoder.Feed(kConnect5.substr(i, 1));
    absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k5);
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_FALSE(p->has_value()) << "packet complete after " << i + 1 << " bytes";
  }
  decoder.Feed(kConnect5.substr(kConnect5.size() - 1));
  absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k5);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ(std::get<Connect>(**p).client_id, "cid");
  EXPECT_EQ(decoder.buffered(), 0u);
  p = decoder.Next(Version::k5);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());
}

TEST(StreamDecoderTest, ManyPacketsInOneFeed) {
  StreamDecoder decoder;
  decoder.Feed(kConnect311 + Hex("32 0A 00 03 'a/b' 00 0A 'hey'"
                                 "C0 00"
                                 "82 06 00 01 00 01 'a' 00"
                                 "E0 00"
                                 "30"));
  std::vector<PacketType> types;
  while (true) {
    absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k311);
    ASSERT_TRUE(p.ok()) << p.status();
    if (!p->has_value()) break;
    types.push_back(TypeOf(**p));
  }
  EXPECT_EQ(types, (std::vector<PacketType>{PacketType::kConnect, PacketType::kPublish,
                                            PacketType::kPingreq, PacketType::kSubscribe,
                                            PacketType::kDisconnect}));
  EXPECT_EQ(decoder.buffered(), 1u);  // the start of the next PUBLISH
  decoder.Feed(Hex("03 00 01 't'"));
  absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k311);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ(std::get<Publish>(**p).topic, "t");
}

TEST(StreamDecoderTest, PacketSplitAcrossFeedsAfterOthers) {
  StreamDecoder decoder;
  std::string bytes = Hex("C0 00") + kConnect5;
  decoder.Feed(bytes.substr(0, 7));
  absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k5);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ(TypeOf(**p), PacketType::kPingreq);
  p = decoder.Next(Version::k5);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());
  EXPECT_EQ(decoder.buffered(), 5u);
  decoder.Feed(bytes.substr(7));
  p = decoder.Next(Version::k5);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ(TypeOf(**p), PacketType::kConnect);
}

TEST(StreamDecoderTest, ErrorPoisonsTheStream) {
  StreamDecoder decoder;
  decoder.Feed(Hex("C0 00 C0 01 00 C0 00"));
  absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k5);
  ASSERT_TRUE(p.ok() && p->has_value());
  for (int i = 0; i < 2; ++i) {
    p = decoder.Next(Version::k5);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(ReasonOf(p.status()), R::kMalformedPacket);
  }
  decoder.Feed(Hex("C0 00"));
  p = decoder.Next(Version::k5);
  EXPECT_FALSE(p.ok());
}

TEST(StreamDecoderTest, TooLargeBeforeTheBodyArrives) {
  StreamDecoder decoder(/*max_packet_bytes=*/64);
  decoder.Feed(Hex("30 C8 01"));  // announces 200 bytes
  absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k5);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(ReasonOf(p.status()), R::kPacketTooLarge);
}

TEST(StreamDecoderTest, DecodesForTheSessionVersion) {
  StreamDecoder decoder;
  decoder.Feed(Hex("40 03 00 07 10"));
  absl::StatusOr<std::optional<Packet>> p = decoder.Next(Version::k311);
  ASSERT_FALSE(p.ok());  // 3.1.1 PUBACK has no reason code
  StreamDecoder decoder5;
  decoder5.Feed(Hex("40 03 00 07 10"));
  p = decoder5.Next(Version::k5);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ(std::get<Puback>(**p).reason, R::kNoMatchingSubscribers);
}

// ---------------------------------------------------------------------------------------------
// Error plumbing

TEST(ReasonOfTest, NonCodecStatusIsUnspecified) {
  EXPECT_EQ(ReasonOf(absl::InternalError("x")), R::kUnspecifiedError);
  EXPECT_EQ(ReasonOf(CodecError(R::kQuotaExceeded, "x")), R::kQuotaExceeded);
  EXPECT_FALSE(CodecError(R::kQuotaExceeded, "x").ok());
}

}  // namespace
}  // namespace mqtt
