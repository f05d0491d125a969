// Tests of proxy/connack_reader.h: the Server Keep Alive is found however the broker's reply is
// cut into reads, behind AUTH packets, and not waited for when the reply is something else.
#include "proxy/connack_reader.h"

#include <gtest/gtest.h>

#include "mqtt/encoder.h"

namespace proxy {
namespace {

std::string ConnackWithKeepAlive(uint16_t seconds) {
  mqtt::Connack connack;
  connack.properties.server_keep_alive = seconds;
  connack.properties.reason_string = std::string(300, 'r');  // a reply longer than one TCP read
  std::string out;
  mqtt::Encode(connack, mqtt::Version::k5, out);
  return out;
}

std::string AuthPacket() {
  mqtt::Auth auth{.reason = mqtt::ReasonCode::kContinueAuthentication};
  auth.properties.authentication_method = "x";
  std::string out;
  mqtt::Encode(auth, mqtt::Version::k5, out);
  return out;
}

// Feeds `reply` in reads of `step` bytes; the keep alive and how many reads were fed when done.
std::pair<std::optional<uint16_t>, size_t> FeedInSteps(const std::string& reply, size_t step) {
  ConnackReader reader;
  size_t reads = 0;
  for (size_t at = 0; at < reply.size(); at += step) {
    bool done = false;
    ++reads;
    std::optional<uint16_t> keep_alive =
        reader.Feed(std::string_view(reply).substr(at, step), done);
    if (done) return {keep_alive, reads};
  }
  return {std::nullopt, reads};
}

TEST(ConnackReaderTest, WholeInOneRead) {
  std::string reply = ConnackWithKeepAlive(5);
  EXPECT_EQ(FeedInSteps(reply, reply.size()),
            std::make_pair(std::optional<uint16_t>(5), size_t{1}));
}

TEST(ConnackReaderTest, CutAnywhere) {
  std::string reply = ConnackWithKeepAlive(7);
  for (size_t step : {1, 2, 3, 100, 200}) {
    size_t reads = (reply.size() + step - 1) / step;
    EXPECT_EQ(FeedInSteps(reply, step), std::make_pair(std::optional<uint16_t>(7), reads)) << step;
  }
}

TEST(ConnackReaderTest, BehindAuthPacketsCutAnywhere) {
  std::string reply = AuthPacket() + AuthPacket() + ConnackWithKeepAlive(9);
  for (size_t step : {size_t{1}, size_t{5}, AuthPacket().size(), reply.size()}) {
    size_t reads = (reply.size() + step - 1) / step;
    EXPECT_EQ(FeedInSteps(reply, step), std::make_pair(std::optional<uint16_t>(9), reads)) << step;
  }
}

TEST(ConnackReaderTest, PacketsAfterTheConnackAreNotRead) {
  std::string reply = ConnackWithKeepAlive(3) + std::string("\x30\x7f", 2);  // a PUBLISH, cut
  EXPECT_EQ(FeedInSteps(reply, reply.size()),
            std::make_pair(std::optional<uint16_t>(3), size_t{1}));
}

TEST(ConnackReaderTest, NoKeepAlive) {
  std::string reply;
  mqtt::Encode(mqtt::Connack{}, mqtt::Version::k5, reply);
  EXPECT_EQ(FeedInSteps(reply, 1), std::make_pair(std::optional<uint16_t>(), reply.size()));
}

TEST(ConnackReaderTest, SomethingElseEndsTheReading) {
  std::string publish("\x30\x05\x00\x01t\x00x", 7);  // not a CONNACK
  EXPECT_EQ(FeedInSteps(publish, 1).second, publish.size());
  bool done = false;
  ConnackReader reader;
  EXPECT_EQ(reader.Feed(std::string_view("\x00\x00", 2), done), std::nullopt);  // reserved type
  EXPECT_TRUE(done);
}

TEST(ConnackReaderTest, AnOverlongReplyIsNotWaitedFor) {
  // A CONNACK announcing more than kMaxHeld bytes: given up as soon as its length is known.
  std::string header = "\x20\x80\x80\x08";  // Remaining Length 131,072
  bool done = false;
  ConnackReader reader;
  EXPECT_EQ(reader.Feed(header, done), std::nullopt);
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace proxy
