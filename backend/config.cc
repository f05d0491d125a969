// Reading conf/broker.toml.
#include "backend/config.h"

#include "base/config_file.h"
#include "mqtt/topic.h"
#include "state/redis_client.h"

namespace backend {
namespace {

// Reads an address key, recording an error for a malformed one. An empty string is an error too,
// not the default: `admin = ""` would otherwise open an admin endpoint on an empty address.
base::HostPort Address(const base::ConfigTable& t, std::string_view key, base::HostPort fallback) {
  if (!t.Has(key)) return fallback;
  std::string text = t.String(key, "");
  absl::StatusOr<base::HostPort> parsed = base::ParseHostPort(text);
  if (!parsed.ok()) {
    t.Fail(key, std::string(parsed.status().message()));
    return fallback;
  }
  return *parsed;
}

absl::StatusOr<BrokerConfig> Read(base::ConfigFile& file) {
  BrokerConfig c;
  base::ConfigTable root = file.root();
  if (std::optional<base::ConfigTable> b = root.Table("broker")) {
    c.node = b->String("node", c.node);
    if (c.node.empty()) b->Fail("node", "expected a non-empty name");
    c.listen = Address(*b, "listen", c.listen);
    if (b->Has("admin")) c.admin = Address(*b, "admin", base::HostPort{});
    c.threads = static_cast<uint32_t>(b->Integer("threads", c.threads, 0, 256));
    c.log_level =
        b->OneOf("log_level", c.log_level, {"trace", "debug", "info", "warn", "error", "off"});
    c.proxy_protocol = b->Bool("proxy_protocol", c.proxy_protocol);
  }
  if (std::optional<base::ConfigTable> l = root.Table("limits")) {
    BrokerLimits& m = c.limits;
    m.max_connections =
        static_cast<uint32_t>(l->Integer("max_connections", m.max_connections, 1, 10'000'000));
    m.max_packet_bytes =
        static_cast<uint32_t>(l->Integer("max_packet_bytes", m.max_packet_bytes, 64, 268'435'460));
    m.connect_timeout_ms = static_cast<uint32_t>(
        l->Integer("connect_timeout_ms", m.connect_timeout_ms, 100, 3'600'000));
    m.max_keepalive_s =
        static_cast<uint16_t>(l->Integer("max_keepalive_s", m.max_keepalive_s, 1, 65'535));
    m.max_inflight = static_cast<uint16_t>(l->Integer("max_inflight", m.max_inflight, 1, 65'535));
    m.max_queued_messages = static_cast<uint32_t>(
        l->Integer("max_queued_messages", m.max_queued_messages, 0, 100'000'000));
    m.topic_alias_maximum =
        static_cast<uint16_t>(l->Integer("topic_alias_maximum", m.topic_alias_maximum, 0, 65'535));
    m.max_session_expiry_s = static_cast<uint32_t>(
        l->Integer("max_session_expiry_s", m.max_session_expiry_s, 0, 4'294'967'295));
    m.max_write_buffer_bytes = static_cast<uint32_t>(
        l->Integer("max_write_buffer_bytes", m.max_write_buffer_bytes, 4096, 1 << 30));
    m.max_subscriptions =
        static_cast<uint32_t>(l->Integer("max_subscriptions", m.max_subscriptions, 0, 100'000'000));
    m.max_filter_levels =
        static_cast<uint32_t>(l->Integer("max_filter_levels", m.max_filter_levels, 0, 65'535));
  }
  if (std::optional<base::ConfigTable> cl = root.Table("cluster")) {
    ClusterConfig& k = c.cluster;
    k.redis_url = cl->String("redis", "");
    if (!k.redis_url.empty()) {
      absl::StatusOr<state::RedisOptions> url = state::ParseRedisUrl(k.redis_url);
      if (!url.ok()) cl->Fail("redis", std::string(url.status().message()));
    }
    k.prefix = cl->String("prefix", k.prefix);
    if (cl->Has("advertise")) k.advertise = Address(*cl, "advertise", base::HostPort{});
    k.heartbeat_ms = static_cast<uint32_t>(cl->Integer("heartbeat_ms", k.heartbeat_ms, 50, 60'000));
    k.node_timeout_ms =
        static_cast<uint32_t>(cl->Integer("node_timeout_ms", k.node_timeout_ms, 200, 600'000));
    if (k.node_timeout_ms < 2 * k.heartbeat_ms) {
      cl->Fail("node_timeout_ms", "expected at least twice heartbeat_ms");
    }
    k.link_queue_bytes = static_cast<uint32_t>(
        cl->Integer("link_queue_bytes", k.link_queue_bytes, 64 * 1024, 1 << 30));
  }
  for (const base::ConfigTable& a : root.Tables("acl")) {
    AccessRule rule;
    rule.allow = a.OneOf("action", "", {"allow", "deny"}) == "allow";
    std::string access = a.OneOf("access", "all", {"publish", "subscribe", "all"});
    rule.publish = access != "subscribe";
    rule.subscribe = access != "publish";
    rule.filter = a.String("filter", "");
    if (!a.Has("action")) a.Fail("action", "expected \"allow\" or \"deny\" (required)");
    if (!mqtt::IsValidTopicFilter(rule.filter)) {
      a.Fail("filter", "expected a valid MQTT topic filter (required)");
    }
    c.acl.push_back(std::move(rule));
  }
  if (absl::Status s = file.Finish(); !s.ok()) return s;
  return c;
}

}  // namespace

absl::StatusOr<BrokerConfig> LoadBrokerConfig(const std::string& path) {
  absl::StatusOr<std::unique_ptr<base::ConfigFile>> file = base::ConfigFile::Load(path);
  if (!file.ok()) return file.status();
  return Read(**file);
}

absl::StatusOr<BrokerConfig> ParseBrokerConfig(const std::string& text, const std::string& name) {
  absl::StatusOr<std::unique_ptr<base::ConfigFile>> file = base::ConfigFile::Parse(text, name);
  if (!file.ok()) return file.status();
  return Read(**file);
}

}  // namespace backend
