// The proxy's configuration (conf/switchboard.toml; docs/configuration.md is the reference).
//
// Listeners accept clients and name a pool; a pool has backends, a strategy, health checks and
// the failover settings. Loading validates everything that can be known before binding: names
// unique, pools that exist, a hash key the listener's protocol can provide, prime-free of
// surprises. Errors name the file, the line, the key and what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "balancer/maglev.h"
#include "balancer/strategy.h"
#include "base/host_port.h"
#include "health/checker.h"
#include "health/health_state.h"

namespace proxy {

enum class Protocol { kMqtt, kTcp };
enum class HashKey { kClientId, kSourceIp };
enum class OnDown { kNone, kShutdownSessions };
enum class OnUp { kNone, kShutdownBackupSessions };

struct BackendConfig {
  std::string name;
  base::HostPort address;
  uint32_t weight = 1;
  uint32_t max_connections = 0;  // over the tier; a full backend is not chosen; 0: no limit
  // Chosen only while no other backend of the pool can take the connection (HAProxy's backup).
  bool backup = false;
  std::optional<base::HostPort> check_address;  // where health checks go; default: address
  bool operator==(const BackendConfig&) const = default;
};

struct HealthConfig {
  bool active = false;  // false: no [pool.NAME.health] table, passive detection only
  health::CheckKind kind = health::CheckKind::kTcp;
  std::string http_path = "/healthz";
  std::optional<std::string> mqtt_username, mqtt_password;  // type = "mqtt" only
  health::Policy policy;
  // Passive ejection never takes the share of the pool out of service (ejected, or down) above
  // this, but may always eject one backend: the pool's, where the backend's policy cannot see.
  uint32_t max_ejection_percent = 50;
};

struct PoolConfig {
  std::string name;
  balancer::StrategyKind strategy = balancer::StrategyKind::kLeastConnections;
  HashKey hash_key = HashKey::kClientId;
  uint32_t maglev_table_size = balancer::MaglevTable::kDefaultSize;  // source-hash: a prime
  bool sticky = false;
  uint32_t sticky_ttl_s = 1800;
  uint32_t retries = 3;
  uint32_t connect_timeout_ms = 2000;
  uint32_t answer_timeout_ms = 10000;  // mqtt: a CONNECT unanswered this long is a failed connect
  bool proxy_protocol = false;
  OnDown on_down = OnDown::kNone;
  OnUp on_up = OnUp::kNone;  // when a backend that is not a backup comes up
  uint32_t shutdown_jitter_ms = 5000;
  uint32_t slow_start_s = 0;
  std::vector<BackendConfig> backends;
  HealthConfig health;
};

struct ListenerConfig {
  std::string name;
  base::HostPort bind;
  Protocol protocol = Protocol::kMqtt;
  std::string pool;
  uint32_t connect_timeout_ms = 5000;  // the CONNECT (mqtt) and a PROXY header, within this
  bool accept_proxy_protocol = false;  // a PROXY v2 header from an upstream comes first
  uint32_t max_connect_bytes = 65536;  // mqtt: a larger CONNECT is refused
  uint32_t idle_timeout_s = 600;       // tcp, and mqtt clients with keep alive 0; 0: none
  uint32_t max_connections = 0;        // open at once; more are closed at accept; 0: no limit
  uint32_t max_connection_rate = 0;    // accepted per second; more wait to be accepted; 0: none
  bool access_log = false;             // a line per connection (proxy/access_log.h)
  bool operator==(const ListenerConfig&) const = default;
};

// Shared state (docs/redis-keys.md). Without a url, the proxy runs alone on in-process state.
struct RedisConfig {
  std::string url;  // "redis://HOST[:PORT][/DB]"; empty: no Redis
  std::string prefix = "sb:";
  std::string health_policy = "any";  // "any" | "majority" of live proxies takes a backend down
  uint32_t command_timeout_ms = 500;
  uint32_t sticky_cache_ms = 1000;  // how long a sticky record read from Redis is trusted
  bool operator==(const RedisConfig&) const = default;
};

struct ProxyConfig {
  std::string instance;  // this proxy's id in shared state; default: host name and process id
  std::optional<base::HostPort> admin;
  std::string admin_token;  // when set, the admin API's POSTs need it as a bearer token
  uint32_t threads = 0;
  bool yield_before_sleep = false;  // see proxy/poller.h
  std::string log_level = "info";
  uint32_t stop_grace_ms = 0;   // after a stop signal: /healthz 503, listeners still open
  uint32_t stop_spread_ms = 0;  // then: client connections closed spread over this
  uint32_t dns_refresh_s = 0;   // backends' host names resolved again this often; 0: never
  std::vector<ListenerConfig> listeners;
  std::map<std::string, PoolConfig> pools;
  RedisConfig redis;
};

[[nodiscard]] absl::StatusOr<ProxyConfig> LoadProxyConfig(const std::string& path);
[[nodiscard]] absl::StatusOr<ProxyConfig> ParseProxyConfig(const std::string& text,
                                                           const std::string& name);

std::string_view StrategyName(balancer::StrategyKind kind);

}  // namespace proxy
