// Tests of proxy/config.h: defaults, every key, and errors that name file, line, key and
// expectation.
#include "proxy/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace proxy {
namespace {

using ::testing::HasSubstr;

constexpr char kMinimal[] = R"(
[[listener]]
name = "mqtt"
bind = "127.0.0.1:1883"
pool = "brokers"

[pool.brokers]
[[pool.brokers.backend]]
name = "b1"
address = "127.0.0.1:1884"
)";

// kMinimal with `line` added to the [pool.brokers] table.
std::string WithPoolKey(const std::string& line) {
  std::string text = kMinimal;
  text.insert(text.find("[pool.brokers]\n") + 15, line + "\n");
  return text;
}

// kMinimal with `line` added to its backend's table.
std::string WithBackendKey(const std::string& line) {
  return std::string(kMinimal) + line + "\n";
}

std::string Error(const std::string& text) {
  absl::StatusOr<ProxyConfig> c = ParseProxyConfig(text, "t.toml");
  EXPECT_FALSE(c.ok()) << "accepted:\n" << text;
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(ProxyConfigTest, MinimalHasDefaults) {
  absl::StatusOr<ProxyConfig> c = ParseProxyConfig(kMinimal, "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].protocol, Protocol::kMqtt);
  EXPECT_EQ(c->listeners[0].connect_timeout_ms, 5000u);
  const PoolConfig& p = c->pools.at("brokers");
  EXPECT_EQ(p.strategy, balancer::StrategyKind::kLeastConnections);
  EXPECT_FALSE(p.sticky);
  EXPECT_EQ(p.retries, 3u);
  EXPECT_EQ(p.answer_timeout_ms, 10000u);
  EXPECT_FALSE(p.health.active);
  ASSERT_EQ(p.backends.size(), 1u);
  EXPECT_EQ(p.backends[0].address, (base::HostPort{"127.0.0.1", 1884}));
  EXPECT_EQ(p.backends[0].weight, 1u);
  EXPECT_FALSE(c->admin.has_value());
  EXPECT_FALSE(c->yield_before_sleep);
  EXPECT_EQ(c->dns_refresh_s, 0u);
}

TEST(ProxyConfigTest, EveryKeyIsRead) {
  absl::StatusOr<ProxyConfig> c = ParseProxyConfig(R"(
[proxy]
instance = "p7"
admin = "127.0.0.1:9000"
admin_token = "0123456789abcdef"
threads = 3
yield_before_sleep = true
log_level = "debug"
stop_grace_ms = 1500
stop_spread_ms = 2500
dns_refresh_s = 30

[[listener]]
name = "raw"
bind = "0.0.0.0:7000"
protocol = "mqtt"
pool = "p"
connect_timeout_ms = 100
max_connect_bytes = 1024
idle_timeout_s = 9
max_connections = 5000
max_connection_rate = 250
access_log = true
accept_proxy_protocol = true

[pool.p]
strategy = "source-hash"
hash_key = "source-ip"
retries = 0
connect_timeout_ms = 50
answer_timeout_ms = 3000
proxy_protocol = true
on_down = "shutdown-sessions"
on_up = "shutdown-backup-sessions"
shutdown_jitter_ms = 10
sticky_ttl_s = 60

[[pool.p.backend]]
name = "a"
address = "127.0.0.1:1"
weight = 5
max_connections = 700
check_address = "127.0.0.1:2"

[[pool.p.backend]]
name = "standby"
address = "127.0.0.1:3"
backup = true

[pool.p.health]
type = "http"
path = "/ready"
interval_ms = 200
fast_interval_ms = 50
timeout_ms = 80
rise = 3
fall = 4
jitter_percent = 0

[pool.p.passive]
failures = 7
eject_base_ms = 20
eject_max_ms = 40
max_ejection_percent = 30

[pool.q]
strategy = "weighted-round-robin"
slow_start_s = 30

[[pool.q.backend]]
name = "b"
address = "127.0.0.1:3"
)",
                                                   "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->instance, "p7");
  EXPECT_EQ(c->threads, 3u);
  EXPECT_TRUE(c->yield_before_sleep);
  EXPECT_EQ(c->admin_token, "0123456789abcdef");
  EXPECT_EQ(c->stop_grace_ms, 1500u);
  EXPECT_EQ(c->stop_spread_ms, 2500u);
  EXPECT_EQ(c->dns_refresh_s, 30u);
  const ListenerConfig& l = c->listeners[0];
  EXPECT_EQ(l.protocol, Protocol::kMqtt);
  EXPECT_EQ(l.connect_timeout_ms, 100u);
  EXPECT_EQ(l.idle_timeout_s, 9u);
  EXPECT_EQ(l.max_connections, 5000u);
  EXPECT_EQ(l.max_connection_rate, 250u);
  EXPECT_TRUE(l.access_log);
  EXPECT_TRUE(l.accept_proxy_protocol);
  EXPECT_EQ(l.max_connect_bytes, 1024u);
  const PoolConfig& p = c->pools.at("p");
  EXPECT_EQ(p.strategy, balancer::StrategyKind::kSourceHash);
  EXPECT_EQ(p.hash_key, HashKey::kSourceIp);
  EXPECT_EQ(p.connect_timeout_ms, 50u);
  EXPECT_EQ(p.answer_timeout_ms, 3000u);
  EXPECT_TRUE(p.proxy_protocol);
  EXPECT_EQ(p.on_down, OnDown::kShutdownSessions);
  EXPECT_EQ(p.on_up, OnUp::kShutdownBackupSessions);
  EXPECT_EQ(c->pools.at("q").slow_start_s, 30u);  // not for source-hash
  EXPECT_EQ(p.backends[0].weight, 5u);
  EXPECT_EQ(p.backends[0].max_connections, 700u);
  EXPECT_EQ(p.backends[0].check_address, (base::HostPort{"127.0.0.1", 2}));
  EXPECT_FALSE(p.backends[0].backup);
  EXPECT_TRUE(p.backends[1].backup);
  EXPECT_TRUE(p.health.active);
  EXPECT_EQ(p.health.kind, health::CheckKind::kHttp);
  EXPECT_EQ(p.health.http_path, "/ready");
  EXPECT_EQ(p.health.policy.rise, 3u);
  EXPECT_EQ(p.health.policy.fall, 4u);
  EXPECT_EQ(p.health.policy.fast_interval.count(), 50);
  EXPECT_EQ(p.health.policy.passive_failures, 7u);
  EXPECT_EQ(p.health.policy.eject_max.count(), 40);
  EXPECT_EQ(p.health.max_ejection_percent, 30u);
}

TEST(ProxyConfigTest, ErrorsNameFileLineKeyAndExpectation) {
  EXPECT_THAT(Error(WithPoolKey("retries = -1")),
              HasSubstr("t.toml:8: pool.brokers.retries: expected an integer from 0 to 100, "
                        "got -1"));
  EXPECT_THAT(Error(WithPoolKey("strategy = \"random\"")),
              HasSubstr("pool.brokers.strategy: expected one of \"weighted-round-robin\", "
                        "\"least-connections\", \"source-hash\", got \"random\""));
}

TEST(ProxyConfigTest, UnknownKeysAreRefused) {
  EXPECT_THAT(Error(WithPoolKey("stickyy = true")), HasSubstr("pool.brokers.stickyy: unknown key"));
}

TEST(ProxyConfigTest, ListenerMustNameAPool) {
  std::string text = kMinimal;
  text.replace(text.find("pool = \"brokers\""), 16, "pool = \"nope\"");
  EXPECT_THAT(Error(text), HasSubstr("listener[0].pool: expected the name of a [pool.NAME] table, "
                                     "got \"nope\""));
}

TEST(ProxyConfigTest, TcpListenerCannotUseClientIds) {
  std::string text = kMinimal;
  text.replace(text.find("pool = \"brokers\""), 16, "pool = \"brokers\"\nprotocol = \"tcp\"");
  text.insert(text.find("[pool.brokers]\n") + 15, "sticky = true\n");
  EXPECT_THAT(Error(text), HasSubstr("no client id without MQTT"));
}

TEST(ProxyConfigTest, TcpListenerRefusesTheConnectKeys) {
  for (std::string key : {"connect_timeout_ms = 100", "max_connect_bytes = 1024"}) {
    std::string text = kMinimal;
    text.replace(text.find("pool = \"brokers\""), 16,
                 "pool = \"brokers\"\nprotocol = \"tcp\"\n" + key);
    EXPECT_THAT(Error(text), HasSubstr("listener[0]." + key.substr(0, key.find(' ')) +
                                       ": only for protocol = \"mqtt\""));
  }
  // The connect timeout also bounds the wait for an upstream's PROXY header.
  std::string text = kMinimal;
  text.replace(text.find("pool = \"brokers\""), 16,
               "pool = \"brokers\"\nprotocol = \"tcp\"\naccept_proxy_protocol = true\n"
               "connect_timeout_ms = 100");
  absl::StatusOr<ProxyConfig> c = ParseProxyConfig(text, "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listeners[0].connect_timeout_ms, 100u);
}

// Names go into admin API paths, metric labels and shared-state keys joined with '/' and ':':
// pool "a/b" with backend "c" would share its drain, counts and votes with pool "a"'s "b/c".
TEST(ProxyConfigTest, NamesAreLettersDigitsDashesUnderscoresAndDots) {
  std::string backend = kMinimal;
  backend.replace(backend.find("name = \"b1\""), 11, "name = \"b/1\"");
  EXPECT_THAT(Error(backend),
              HasSubstr("pool.brokers.backend[0].name: expected a name of letters"));
  std::string pool = kMinimal;
  for (auto [from, to] : {std::pair{"pool = \"brokers\"", "pool = \"a:b\""},
                          {"[pool.brokers]", "[pool.\"a:b\"]"},
                          {"[[pool.brokers.backend]]", "[[pool.\"a:b\".backend]]"}}) {
    pool.replace(pool.find(from), std::string_view(from).size(), to);
  }
  EXPECT_THAT(Error(pool), HasSubstr("pool.a:b: expected a name of letters"));
  std::string listener = kMinimal;
  listener.replace(listener.find("name = \"mqtt\""), 13, "name = \"m qtt\"");
  EXPECT_THAT(Error(listener), HasSubstr("listener[0].name: expected a name of letters"));
  std::string fine = kMinimal;
  fine.replace(fine.find("name = \"b1\""), 11, "name = \"broker-1.eu_west\"");
  EXPECT_TRUE(ParseProxyConfig(fine, "t.toml").ok());
}

TEST(ProxyConfigTest, BackendAddressesNeedAHostAndAPort) {
  for (std::string address : {":1884", "127.0.0.1:0"}) {
    std::string text = kMinimal;
    text.replace(text.find("127.0.0.1:1884"), 14, address);
    EXPECT_THAT(Error(text), HasSubstr("pool.brokers.backend[0].address: expected HOST:PORT to "
                                       "connect to, with a port from 1, got \"" +
                                       address + "\""));
  }
  EXPECT_THAT(Error(WithBackendKey("check_address = \"127.0.0.1:0\"")),
              HasSubstr("check_address: expected HOST:PORT to connect to"));
}

TEST(ProxyConfigTest, ListenersDoNotShareAnAddress) {
  auto with_second = [](std::string bind) {
    return std::string(kMinimal) + "[[listener]]\nname = \"other\"\nbind = \"" + bind +
           "\"\npool = \"brokers\"\n";
  };
  for (std::string bind : {"127.0.0.1:1883", "0.0.0.0:1883", ":1883", "[::]:1883"}) {
    EXPECT_THAT(Error(with_second(bind)),
                HasSubstr("listener[1].bind: expected an address of its own: listener \"mqtt\" "
                          "binds 127.0.0.1:1883"))
        << bind;
  }
  for (std::string bind : {"127.0.0.2:1883", "127.0.0.1:1884", "127.0.0.1:0"}) {
    EXPECT_TRUE(ParseProxyConfig(with_second(bind), "t.toml").ok()) << bind;
  }
}

TEST(ProxyConfigTest, AdminTokenIsNotTooShort) {
  EXPECT_THAT(Error("[proxy]\nadmin_token = \"short\"\n" + std::string(kMinimal)),
              HasSubstr("proxy.admin_token: expected at least 16 characters"));
}

TEST(ProxyConfigTest, CheckPathOnlyForHttp) {
  std::string text =
      std::string(kMinimal) + "[pool.brokers.health]\ntype = \"mqtt\"\npath = \"/x\"\n";
  EXPECT_THAT(Error(text), HasSubstr("pool.brokers.health.path: only for type = \"http\""));
}

TEST(ProxyConfigTest, CheckCredentialsOnlyForMqtt) {
  std::string mqtt = std::string(kMinimal) + "[pool.brokers.health]\ntype = \"mqtt\"\n";
  absl::StatusOr<ProxyConfig> c =
      ParseProxyConfig(mqtt + "username = \"probe\"\npassword = \"s3cret\"\n", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pools.at("brokers").health.mqtt_username, "probe");
  EXPECT_EQ(c->pools.at("brokers").health.mqtt_password, "s3cret");
  EXPECT_THAT(Error(mqtt + "password = \"s3cret\"\n"),
              HasSubstr("pool.brokers.health.password: only with a username"));
  EXPECT_THAT(Error(std::string(kMinimal) + "[pool.brokers.health]\nusername = \"probe\"\n"),
              HasSubstr("pool.brokers.health.username: only for type = \"mqtt\""));
}

TEST(ProxyConfigTest, HashKeyOnlyForSourceHash) {
  EXPECT_THAT(Error(WithPoolKey("hash_key = \"source-ip\"")),
              HasSubstr("pool.brokers.hash_key: only for strategy = \"source-hash\""));
}

TEST(ProxyConfigTest, MaglevTableSizeIsAPrimeForSourceHash) {
  absl::StatusOr<ProxyConfig> c = ParseProxyConfig(
      WithPoolKey("strategy = \"source-hash\"\nmaglev_table_size = 251"), "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pools.at("brokers").maglev_table_size, 251u);
  EXPECT_THAT(Error(WithPoolKey("strategy = \"source-hash\"\nmaglev_table_size = 65536")),
              HasSubstr("pool.brokers.maglev_table_size: expected a prime"));
  EXPECT_THAT(Error(WithPoolKey("strategy = \"source-hash\"\nmaglev_table_size = 2") +
                    "[[pool.brokers.backend]]\nname = \"b2\"\naddress = \"127.0.0.1:1885\"\n"),
              HasSubstr("pool.brokers.maglev_table_size: expected more slots than the pool's 2 "
                        "backends"));
  EXPECT_THAT(Error(WithPoolKey("maglev_table_size = 251")),
              HasSubstr("pool.brokers.maglev_table_size: only for strategy = \"source-hash\""));
}

TEST(ProxyConfigTest, NoSlowStartForSourceHash) {
  EXPECT_THAT(Error(WithPoolKey("strategy = \"source-hash\"\nslow_start_s = 30")),
              HasSubstr("pool.brokers.slow_start_s: not for strategy = \"source-hash\""));
  absl::StatusOr<ProxyConfig> zero =
      ParseProxyConfig(WithPoolKey("strategy = \"source-hash\"\nslow_start_s = 0"), "t.toml");
  EXPECT_TRUE(zero.ok()) << zero.status();
}

TEST(ProxyConfigTest, BackendNamesUniqueAndAddressesRequired) {
  std::string dup = std::string(kMinimal) +
                    "[[pool.brokers.backend]]\nname = \"b1\"\naddress = \"127.0.0.1:1\"\n";
  EXPECT_THAT(Error(dup), HasSubstr("name: expected a name unique in its pool"));
  std::string no_address = std::string(kMinimal) + "[[pool.brokers.backend]]\nname = \"b2\"\n";
  EXPECT_THAT(Error(no_address), HasSubstr("address: expected HOST:PORT (required)"));
}

TEST(ProxyConfigTest, APoolIsNotOnlyBackups) {
  EXPECT_THAT(
      Error(WithBackendKey("backup = true")),
      HasSubstr("pool.brokers.backend: expected at least one backend without backup = true"));
  EXPECT_THAT(Error(WithBackendKey("backup = 1")), HasSubstr("backup: expected true or false"));
  EXPECT_THAT(
      Error(WithPoolKey("on_up = \"shutdown-backup-sessions\"")),
      HasSubstr("pool.brokers.on_up: expected a pool with a backend that has backup = true"));
}

TEST(ProxyConfigTest, NeedsListenerAndBackends) {
  EXPECT_THAT(Error("[pool.x]\n[[pool.x.backend]]\nname=\"a\"\naddress=\"1.2.3.4:5\"\n"),
              HasSubstr("expected at least one [[listener]]"));
  EXPECT_THAT(Error("[[listener]]\nname=\"l\"\nbind=\"127.0.0.1:1\"\npool=\"x\"\n[pool.x]\n"),
              HasSubstr("expected at least one [[pool.NAME.backend]]"));
}

TEST(ProxyConfigTest, RedisSection) {
  absl::StatusOr<ProxyConfig> none = ParseProxyConfig(kMinimal, "t.toml");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->redis.url.empty());  // alone, on in-process state
  EXPECT_FALSE(none->instance.empty());  // a generated, unique-enough id
  absl::StatusOr<ProxyConfig> c = ParseProxyConfig(
      std::string(kMinimal) +
          "[redis]\nurl = \"redis://10.0.0.1:6380/1\"\nprefix = \"x:\"\n"
          "health_policy = \"majority\"\ncommand_timeout_ms = 200\nsticky_cache_ms = 0\n",
      "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->redis.url, "redis://10.0.0.1:6380/1");
  EXPECT_EQ(c->redis.prefix, "x:");
  EXPECT_EQ(c->redis.health_policy, "majority");
  EXPECT_EQ(c->redis.command_timeout_ms, 200u);
  EXPECT_EQ(c->redis.sticky_cache_ms, 0u);
  EXPECT_THAT(Error(std::string(kMinimal) + "[redis]\nurl = \"http://x\"\n"),
              HasSubstr("redis.url: expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"));
  EXPECT_THAT(Error(std::string(kMinimal) + "[redis]\nhealth_policy = \"all\"\n"),
              HasSubstr("redis.health_policy: expected one of \"any\", \"majority\""));
}

TEST(ProxyConfigTest, MalformedTomlIsReported) {
  EXPECT_THAT(Error("[[listener]\n"), HasSubstr("t.toml"));
}

}  // namespace
}  // namespace proxy
