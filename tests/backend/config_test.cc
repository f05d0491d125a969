// Tests of backend/config.cc: the defaults, every key of conf/broker.toml, and the error for each
// kind of mistake, which must name the file, the line, the dotted key and what was expected.
#include "backend/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace backend {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The error message for `text`, failing the test when it parses.
std::string Error(const std::string& text) {
  absl::StatusOr<BrokerConfig> c = ParseBrokerConfig(text, "test.toml");
  EXPECT_FALSE(c.ok()) << text;
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(BrokerConfigTest, EmptyFileGivesTheDefaults) {
  absl::StatusOr<BrokerConfig> c = ParseBrokerConfig("", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  BrokerConfig d;
  EXPECT_EQ(c->node, "broker");
  EXPECT_EQ(c->listen, (base::HostPort{"127.0.0.1", 1883}));
  EXPECT_FALSE(c->admin.has_value());
  EXPECT_EQ(c->threads, 0u);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_EQ(c->limits.max_connections, 100'000u);
  EXPECT_EQ(c->limits.max_packet_bytes, 1u << 20);
  EXPECT_EQ(c->limits.connect_timeout_ms, 10'000u);
  EXPECT_EQ(c->limits.max_keepalive_s, 65'535);
  EXPECT_EQ(c->limits.max_inflight, 64);
  EXPECT_EQ(c->limits.max_queued_messages, 1000u);
  EXPECT_EQ(c->limits.topic_alias_maximum, 64);
  EXPECT_EQ(c->limits.max_session_expiry_s, 0u);
  EXPECT_EQ(c->limits.max_write_buffer_bytes, 1u << 20);
  EXPECT_EQ(c->limits.max_subscriptions, 0u);
  EXPECT_EQ(c->limits.max_filter_levels, 128u);
  EXPECT_TRUE(c->acl.empty());
  // The struct's own defaults are the documented ones.
  EXPECT_EQ(d.limits.max_inflight, c->limits.max_inflight);
}

TEST(BrokerConfigTest, EmptyTablesGiveTheDefaults) {
  absl::StatusOr<BrokerConfig> c = ParseBrokerConfig("[broker]\n[limits]\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node, "broker");
  EXPECT_EQ(c->limits.max_inflight, 64);
}

TEST(BrokerConfigTest, EveryKeyIsRead) {
  absl::StatusOr<BrokerConfig> c = ParseBrokerConfig(R"(
[broker]
node = "b7"
listen = "0.0.0.0:1884"
admin = "[::1]:8081"
threads = 3
log_level = "debug"

[limits]
max_connections = 5
max_packet_bytes = 4096
connect_timeout_ms = 250
max_keepalive_s = 120
max_inflight = 10
max_queued_messages = 0
topic_alias_maximum = 0
max_session_expiry_s = 4294967295
max_write_buffer_bytes = 8192
max_subscriptions = 7
max_filter_levels = 0

[[acl]]
action = "deny"
access = "publish"
filter = "$SYS/#"

[[acl]]
action = "allow"
access = "subscribe"
filter = "a/+"

[[acl]]
action = "deny"
filter = "#"
)",
                                                     "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node, "b7");
  EXPECT_EQ(c->listen, (base::HostPort{"0.0.0.0", 1884}));
  ASSERT_TRUE(c->admin.has_value());
  EXPECT_EQ(*c->admin, (base::HostPort{"::1", 8081}));
  EXPECT_EQ(c->threads, 3u);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->limits.max_connections, 5u);
  EXPECT_EQ(c->limits.max_packet_bytes, 4096u);
  EXPECT_EQ(c->limits.connect_timeout_ms, 250u);
  EXPECT_EQ(c->limits.max_keepalive_s, 120);
  EXPECT_EQ(c->limits.max_inflight, 10);
  EXPECT_EQ(c->limits.max_queued_messages, 0u);  // no queue beyond the window
  EXPECT_EQ(c->limits.topic_alias_maximum, 0);
  EXPECT_EQ(c->limits.max_session_expiry_s, 4'294'967'295u);
  EXPECT_EQ(c->limits.max_write_buffer_bytes, 8192u);
  EXPECT_EQ(c->limits.max_subscriptions, 7u);
  EXPECT_EQ(c->limits.max_filter_levels, 0u);
  ASSERT_EQ(c->acl.size(), 3u);
  EXPECT_FALSE(c->acl[0].allow);
  EXPECT_TRUE(c->acl[0].publish);
  EXPECT_FALSE(c->acl[0].subscribe);
  EXPECT_EQ(c->acl[0].filter, "$SYS/#");
  EXPECT_TRUE(c->acl[1].allow);
  EXPECT_FALSE(c->acl[1].publish);
  EXPECT_TRUE(c->acl[1].subscribe);
  EXPECT_EQ(c->acl[1].filter, "a/+");
  EXPECT_FALSE(c->acl[2].allow);
  EXPECT_TRUE(c->acl[2].publish);  // access defaults to "all"
  EXPECT_TRUE(c->acl[2].subscribe);
  EXPECT_EQ(c->acl[2].filter, "#");
}

TEST(BrokerConfigTest, ListenOnAllInterfacesAndAnyPort) {
  absl::StatusOr<BrokerConfig> c = ParseBrokerConfig("[broker]\nlisten = \":0\"\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, (base::HostPort{"0.0.0.0", 0}));
}

TEST(BrokerConfigTest, TheShippedFileParses) {
  absl::StatusOr<BrokerConfig> c = LoadBrokerConfig(SWITCHBOARD_SOURCE_DIR "/conf/broker.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, (base::HostPort{"127.0.0.1", 1883}));
  EXPECT_EQ(c->limits.max_inflight, 64);
}

TEST(BrokerConfigTest, MissingFile) {
  absl::StatusOr<BrokerConfig> c = LoadBrokerConfig("/nonexistent/broker.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/broker.toml"));
}

TEST(BrokerConfigTest, OutOfRangeIntegers) {
  EXPECT_EQ(Error("[limits]\n\nmax_inflight = 0\n"),
            "test.toml:3: limits.max_inflight: expected an integer from 1 to 65535, got 0");
  EXPECT_EQ(Error("[limits]\nmax_inflight = 65536\n"),
            "test.toml:2: limits.max_inflight: expected an integer from 1 to 65535, got 65536");
  EXPECT_EQ(Error("[limits]\nmax_connections = 0\n"),
            "test.toml:2: limits.max_connections: expected an integer from 1 to 10000000, got 0");
  EXPECT_EQ(Error("[limits]\nmax_packet_bytes = 63\n"),
            "test.toml:2: limits.max_packet_bytes: expected an integer from 64 to 268435460, "
            "got 63");
  EXPECT_EQ(Error("[limits]\nconnect_timeout_ms = 99\n"),
            "test.toml:2: limits.connect_timeout_ms: expected an integer from 100 to 3600000, "
            "got 99");
  EXPECT_EQ(Error("[limits]\nmax_keepalive_s = 0\n"),
            "test.toml:2: limits.max_keepalive_s: expected an integer from 1 to 65535, got 0");
  EXPECT_EQ(Error("[limits]\nmax_queued_messages = -1\n"),
            "test.toml:2: limits.max_queued_messages: expected an integer from 0 to 100000000, "
            "got -1");
  EXPECT_EQ(
      Error("[limits]\nmax_filter_levels = 65536\n"),
      "test.toml:2: limits.max_filter_levels: expected an integer from 0 to 65535, got 65536");
  EXPECT_EQ(Error("[limits]\ntopic_alias_maximum = 65536\n"),
            "test.toml:2: limits.topic_alias_maximum: expected an integer from 0 to 65535, "
            "got 65536");
  EXPECT_EQ(Error("[limits]\nmax_session_expiry_s = 4294967296\n"),
            "test.toml:2: limits.max_session_expiry_s: expected an integer from 0 to 4294967295, "
            "got 4294967296");
  EXPECT_EQ(Error("[limits]\nmax_write_buffer_bytes = 4095\n"),
            "test.toml:2: limits.max_write_buffer_bytes: expected an integer from 4096 to "
            "1073741824, got 4095");
  EXPECT_EQ(Error("[broker]\nthreads = 257\n"),
            "test.toml:2: broker.threads: expected an integer from 0 to 256, got 257");
}

TEST(BrokerConfigTest, WrongTypes) {
  EXPECT_EQ(Error("[limits]\nmax_inflight = \"64\"\n"),
            "test.toml:2: limits.max_inflight: expected an integer from 1 to 65535, got \"64\"");
  EXPECT_EQ(Error("[limits]\nmax_inflight = 6.4\n"),
            "test.toml:2: limits.max_inflight: expected an integer from 1 to 65535, got 6.4");
  EXPECT_EQ(Error("[broker]\nthreads = true\n"),
            "test.toml:2: broker.threads: expected an integer from 0 to 256, got true");
  EXPECT_EQ(Error("[broker]\nnode = 7\n"), "test.toml:2: broker.node: expected a string, got 7");
  EXPECT_EQ(Error("[broker]\nlisten = 1883\n"),
            "test.toml:2: broker.listen: expected a string, got 1883");
  EXPECT_EQ(Error("[broker]\nlog_level = 3\n"),
            "test.toml:2: broker.log_level: expected one of \"trace\", \"debug\", \"info\", "
            "\"warn\", \"error\", \"off\", got 3");
  EXPECT_THAT(Error("broker = 5\n"), StartsWith("test.toml:1: broker: expected a table"));
  EXPECT_THAT(Error("limits = \"x\"\n"), StartsWith("test.toml:1: limits: expected a table"));
  EXPECT_THAT(Error("[acl]\naction = \"deny\"\n"),
              StartsWith("test.toml:1: acl: expected an array of tables"));
}

TEST(BrokerConfigTest, BadValues) {
  EXPECT_EQ(Error("[broker]\nlog_level = \"verbose\"\n"),
            "test.toml:2: broker.log_level: expected one of \"trace\", \"debug\", \"info\", "
            "\"warn\", \"error\", \"off\", got \"verbose\"");
  EXPECT_EQ(Error("[broker]\nnode = \"\"\n"),
            "test.toml:2: broker.node: expected a non-empty name");
  EXPECT_EQ(Error("[broker]\nlisten = \"localhost\"\n"),
            "test.toml:2: broker.listen: expected HOST:PORT, got \"localhost\"");
  EXPECT_EQ(Error("[broker]\n\nadmin = \"127.0.0.1:99999\"\n"),
            "test.toml:3: broker.admin: expected HOST:PORT, got \"127.0.0.1:99999\"");
}

TEST(BrokerConfigTest, EmptyAddressesAreErrors) {
  // An empty address is neither the default nor "off": say so rather than guess.
  EXPECT_EQ(Error("[broker]\nlisten = \"\"\n"),
            "test.toml:2: broker.listen: expected HOST:PORT, got \"\"");
  EXPECT_EQ(Error("[broker]\nadmin = \"\"\n"),
            "test.toml:2: broker.admin: expected HOST:PORT, got \"\"");
}

TEST(BrokerConfigTest, UnknownKeys) {
  EXPECT_EQ(Error("[limits]\nmax_inflight = 5\nmax_inflights = 5\n"),
            "test.toml:3: limits.max_inflights: unknown key");
  EXPECT_EQ(Error("[broker]\nnode = \"b\"\n\n[brokers]\nnode = \"b\"\n"),
            "test.toml:4: brokers: unknown key");
  EXPECT_EQ(Error("top = 1\n"), "test.toml:1: top: unknown key");
  EXPECT_EQ(Error("[[acl]]\naction = \"deny\"\nfilter = \"#\"\nfliter = \"a\"\n"),
            "test.toml:4: acl[0].fliter: unknown key");
}

TEST(BrokerConfigTest, AclErrors) {
  EXPECT_EQ(Error("[[acl]]\naction = \"deny\"\nfilter = \"a/#/b\"\n"),
            "test.toml:3: acl[0].filter: expected a valid MQTT topic filter (required)");
  EXPECT_EQ(Error("[[acl]]\naction = \"deny\"\nfilter = \"\"\n"),
            "test.toml:3: acl[0].filter: expected a valid MQTT topic filter (required)");
  EXPECT_EQ(Error("[[acl]]\naction = \"permit\"\nfilter = \"#\"\n"),
            "test.toml:2: acl[0].action: expected one of \"allow\", \"deny\", got \"permit\"");
  EXPECT_EQ(Error("[[acl]]\naction = \"deny\"\naccess = \"read\"\nfilter = \"#\"\n"),
            "test.toml:3: acl[0].access: expected one of \"publish\", \"subscribe\", \"all\", "
            "got \"read\"");
  EXPECT_EQ(Error("[[acl]]\naction = \"deny\"\nfilter = 5\n"),
            "test.toml:3: acl[0].filter: expected a string, got 5");
}

TEST(BrokerConfigTest, MissingRequiredAclKeysNameTheRuleLine) {
  // A missing key has no line of its own; the error points at the rule that lacks it.
  EXPECT_EQ(Error("[[acl]]\naction = \"deny\"\nfilter = \"#\"\n\n[[acl]]\nfilter = \"a\"\n"),
            "test.toml:5: acl[1].action: expected \"allow\" or \"deny\" (required)");
  EXPECT_EQ(Error("[[acl]]\naction = \"allow\"\n"),
            "test.toml:1: acl[0].filter: expected a valid MQTT topic filter (required)");
}

TEST(BrokerConfigTest, FirstErrorWins) {
  EXPECT_EQ(Error("[limits]\nmax_inflight = 0\nmax_connections = 0\nbogus = 1\n"),
            "test.toml:2: limits.max_inflight: expected an integer from 1 to 65535, got 0");
}

TEST(BrokerConfigTest, MalformedToml) {
  EXPECT_THAT(Error("[limits\nmax_inflight = 5\n"), StartsWith("test.toml:1: invalid TOML: "));
  EXPECT_THAT(Error("[limits]\nmax_inflight = = 5\n"), StartsWith("test.toml:2: invalid TOML: "));
  // A key defined twice: the second definition is the mistake.
  EXPECT_THAT(Error("[limits]\nmax_inflight = 5\nmax_inflight = 6\n"),
              StartsWith("test.toml:3: invalid TOML: "));
}

}  // namespace
}  // namespace backend
