// Tests of backend/message.cc's encoding for storage outside the process: a message's expiry is
// kept as a wall-clock time, so that one read long after it was written (a retained message in
// Redis read by a node that starts hours later) is not given its whole interval again.
#include "backend/message.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace backend {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point kNow = Clock::time_point() + std::chrono::hours(1);

MessagePtr Expiring(std::optional<uint32_t> interval_s) {
  mqtt::Properties properties;
  properties.message_expiry_interval = interval_s;
  properties.content_type = "text/plain";
  return MakeMessage("a/b", "payload", mqtt::QoS::k1, true, std::move(properties), 0, kNow);
}

// `bytes` with its stored expiry replaced by `left` from now.
std::string ExpiringIn(std::string bytes, milliseconds left) {
  auto ms = static_cast<uint64_t>(WallClockMillis() + left.count());
  for (int i = 0; i < 8; ++i)
    bytes[1 + i] = static_cast<char>(ms >> (56 - 8 * i));
  return bytes;
}

TEST(StoredMessage, RoundTripKeepsEverythingAndTheTimeLeft) {
  std::string bytes = EncodeMessage(*Expiring(60), kNow + seconds(10));
  // Decoded at once (by the wall clock) on another node whose steady clock reads otherwise.
  absl::StatusOr<MessagePtr> m = DecodeMessage(bytes, kNow + seconds(500));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->topic, "a/b");
  EXPECT_EQ((*m)->payload, "payload");
  EXPECT_EQ((*m)->qos, mqtt::QoS::k1);
  EXPECT_TRUE((*m)->retain);
  ASSERT_TRUE((*m)->properties);
  EXPECT_EQ((*m)->properties->content_type, "text/plain");
  ASSERT_TRUE((*m)->expires_at);
  Clock::time_point expected = kNow + seconds(500) + seconds(50);
  EXPECT_LE(*(*m)->expires_at, expected);
  EXPECT_GT(*(*m)->expires_at, expected - seconds(1));
}

TEST(StoredMessage, ReadAfterItsExpiryItIsExpired) {
  std::string bytes = EncodeMessage(*Expiring(60), kNow);
  // Written long ago: its time ran out a second before the read.
  absl::StatusOr<MessagePtr> m = DecodeMessage(ExpiringIn(bytes, -seconds(1)), kNow);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE((*m)->expired(kNow));
  // With two seconds of its interval left, two seconds, not the interval the PUBLISH carries.
  m = DecodeMessage(ExpiringIn(bytes, seconds(2)), kNow);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE((*m)->expired(kNow + seconds(1)));
  EXPECT_TRUE((*m)->expired(kNow + seconds(3)));
}

TEST(StoredMessage, WithoutExpiryNeverExpires) {
  absl::StatusOr<MessagePtr> m = DecodeMessage(EncodeMessage(*Expiring(std::nullopt), kNow), kNow);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE((*m)->expires_at);
}

TEST(StoredMessage, ReadsTheFormatBefore) {
  // The PUBLISH alone, its interval counted from the decoding.
  std::string bytes = EncodeMessage(*Expiring(60), kNow).substr(9);
  absl::StatusOr<MessagePtr> m = DecodeMessage(bytes, kNow + seconds(5));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*(*m)->expires_at, kNow + seconds(65));
  EXPECT_TRUE(IsIntervalFormat(bytes));
  EXPECT_FALSE(IsIntervalFormat(EncodeMessage(**m, kNow)));
}

TEST(StoredMessage, RefusesBadBytes) {
  std::string bytes = EncodeMessage(*Expiring(60), kNow);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeMessage(bytes.substr(0, n), kNow).ok()) << n;
  }
  EXPECT_FALSE(DecodeMessage(bytes + "x", kNow).ok());
}

}  // namespace
}  // namespace backend
