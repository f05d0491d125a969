// The broker's configuration: conf/broker.toml documents every key; command-line flags override
// the file (see main.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/access_rules.h"
#include "base/host_port.h"

namespace backend {

struct BrokerLimits {
  uint32_t max_connections = 100'000;
  uint32_t max_packet_bytes = 1 << 20;  // also announced as Maximum Packet Size
  uint32_t connect_timeout_ms = 10'000;
  uint16_t max_keepalive_s = 65'535;  // announced as Server Keep Alive when a client asks more
  uint16_t max_inflight = 64;         // QoS 1/2 PUBLISH in flight per session, both directions
  uint32_t max_queued_messages = 1000;
  uint16_t topic_alias_maximum = 64;
  uint32_t max_session_expiry_s = 0;  // 0: no cap
  // Bytes waiting to be written to one client beyond which its session queue stops draining and
  // its connection stops being read.
  uint32_t max_write_buffer_bytes = 1 << 20;
  // Every shard keeps a replica of every subscription, a trie node per filter level: these bound
  // what one client can make the broker hold. 0: no limit.
  uint32_t max_subscriptions = 0;  // per session
  uint32_t max_filter_levels = 128;
};

// Joining a cluster of nodes through Redis (docs/redis-keys.md). Without a redis url, the broker
// is a complete single broker.
struct ClusterConfig {
  std::string redis_url;  // "redis://HOST[:PORT][/DB]"; empty: no cluster
  std::string prefix = "sb:";
  // Where the other nodes reach this one (its MQTT listener); default: the listen address,
  // which must then not be a wildcard address.
  std::optional<base::HostPort> advertise;
  uint32_t heartbeat_ms = 500;
  uint32_t node_timeout_ms = 2000;      // a node silent this long has left
  uint32_t link_queue_bytes = 8 << 20;  // per link: beyond, publishers are not read until it drains
};

struct BrokerConfig {
  std::string node = "broker";
  base::HostPort listen{"127.0.0.1", 1883};
  std::optional<base::HostPort> admin;  // none: no admin HTTP
  uint32_t threads = 0;                 // 0: one per core
  std::string log_level = "info";
  // Every connection starts with a PROXY protocol v2 header (the proxy's proxy_protocol = true);
  // one without is refused.
  bool proxy_protocol = false;
  BrokerLimits limits;
  std::vector<AccessRule> acl;
  ClusterConfig cluster;
};

// Reads a broker configuration file. Errors name the file, the key and what was expected.
[[nodiscard]] absl::StatusOr<BrokerConfig> LoadBrokerConfig(const std::string& path);
// The same from text, for tests.
[[nodiscard]] absl::StatusOr<BrokerConfig> ParseBrokerConfig(const std::string& text,
                                                             const std::string& name);

}  // namespace backend
