// Reading conf/switchboard.toml.
#include "proxy/config.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "base/config_file.h"
#include "state/redis_client.h"

namespace proxy {
namespace {

using base::ConfigTable;

// What an address is for: a listener or the admin API binds it (":PORT" is every interface, port
// 0 any free one); a backend's is connected to, so it needs both a host and a port.
enum class Use { kBind, kConnect };

base::HostPort Address(const ConfigTable& t, std::string_view key, Use use) {
  std::string text = t.String(key, "");
  if (text.empty()) {
    t.Fail(key, "expected HOST:PORT (required)");
    return {};
  }
  absl::StatusOr<base::HostPort> parsed = base::ParseHostPort(text);
  if (!parsed.ok()) {
    t.Fail(key, std::string(parsed.status().message()));
  } else if (use == Use::kConnect && (text.front() == ':' || parsed->port == 0)) {
    t.Fail(key,
           fmt::format("expected HOST:PORT to connect to, with a port from 1, got \"{}\"", text));
  }
  return parsed.value_or(base::HostPort{});
}

// Names go into admin API paths (/api/backends/NAME/...), metric labels and shared-state keys,
// which join them with '/' and ':': so neither may be in one, nor anything a URL would escape.
bool ValidName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}
constexpr std::string_view kNameExpected =
    "expected a name of letters, digits, '-', '_' and '.' (required)";

std::string Name(const ConfigTable& t) {
  std::string name = t.String("name", "");
  if (!ValidName(name)) t.Fail("name", kNameExpected);
  return name;
}

// Whether two listeners' addresses would take each other's connections: the same port, and
// the same host or a wildcard on either side (port 0 takes a free port, never a taken one).
bool Overlap(const base::HostPort& a, const base::HostPort& b) {
  auto wildcard = [](const base::HostPort& x) { return x.host == "0.0.0.0" || x.host == "::"; };
  return a.port != 0 && a.port == b.port && (a.host == b.host || wildcard(a) || wildcard(b));
}

uint32_t U32(const ConfigTable& t, std::string_view key, uint32_t fallback, int64_t min,
             int64_t max) {
  return static_cast<uint32_t>(t.Integer(key, fallback, min, max));
}

void ReadHealth(const ConfigTable& h, HealthConfig& out) {
  out.active = true;
  std::string type = h.OneOf("type", "tcp", {"tcp", "mqtt", "http"});
  out.kind = type == "mqtt"   ? health::CheckKind::kMqtt
             : type == "http" ? health::CheckKind::kHttp
                              : health::CheckKind::kTcp;
  out.http_path = h.String("path", out.http_path);
  if (out.http_path.empty() || out.http_path[0] != '/')
    h.Fail("path", "expected a path like \"/healthz\"");
  if (h.Has("path") && out.kind != health::CheckKind::kHttp)
    h.Fail("path", "only for type = \"http\"");
  for (auto [key, value] :
       {std::pair{"username", &out.mqtt_username}, std::pair{"password", &out.mqtt_password}}) {
    if (!h.Has(key)) continue;
    *value = h.String(key, "");
    if (out.kind != health::CheckKind::kMqtt) h.Fail(key, "only for type = \"mqtt\"");
  }
  // MQTT 3.1.1 §3.1.2.9: no password without a user name.
  if (out.mqtt_password && !out.mqtt_username) h.Fail("password", "only with a username");
  health::Policy& p = out.policy;
  p.interval = health::Millis(U32(h, "interval_ms", p.interval.count(), 10, 3'600'000));
  p.fast_interval = health::Millis(
      U32(h, "fast_interval_ms", std::min(p.fast_interval, p.interval).count(), 10, 3'600'000));
  p.timeout = health::Millis(U32(h, "timeout_ms", p.timeout.count(), 10, 600'000));
  p.rise = U32(h, "rise", p.rise, 1, 100);
  p.fall = U32(h, "fall", p.fall, 1, 100);
  p.jitter_percent = U32(h, "jitter_percent", p.jitter_percent, 0, 50);
}

void ReadPassive(const ConfigTable& t, HealthConfig& h) {
  health::Policy& p = h.policy;
  p.passive_failures = U32(t, "failures", p.passive_failures, 0, 1000);
  p.eject_base = health::Millis(U32(t, "eject_base_ms", p.eject_base.count(), 10, 3'600'000));
  p.eject_max = health::Millis(U32(t, "eject_max_ms", p.eject_max.count(), 10, 86'400'000));
  if (p.eject_max < p.eject_base) t.Fail("eject_max_ms", "expected at least eject_base_ms");
  h.max_ejection_percent = U32(t, "max_ejection_percent", h.max_ejection_percent, 0, 100);
}

PoolConfig ReadPool(const std::string& name, const ConfigTable& t) {
  PoolConfig p;
  p.name = name;
  std::string strategy = t.OneOf("strategy", "least-connections",
                                 {"weighted-round-robin", "least-connections", "source-hash"});
  p.strategy = strategy == "weighted-round-robin" ? balancer::StrategyKind::kWeightedRoundRobin
               : strategy == "source-hash"        ? balancer::StrategyKind::kSourceHash
                                                  : balancer::StrategyKind::kLeastConnections;
  std::string key = t.OneOf("hash_key", "client-id", {"client-id", "source-ip"});
  p.hash_key = key == "source-ip" ? HashKey::kSourceIp : HashKey::kClientId;
  if (t.Has("hash_key") && p.strategy != balancer::StrategyKind::kSourceHash) {
    t.Fail("hash_key", "only for strategy = \"source-hash\"");
  }
  // Envoy's bounds for its Maglev table.
  p.maglev_table_size = U32(t, "maglev_table_size", p.maglev_table_size, 2, 5'000'011);
  if (!balancer::IsPrime(p.maglev_table_size)) t.Fail("maglev_table_size", "expected a prime");
  if (t.Has("maglev_table_size") && p.strategy != balancer::StrategyKind::kSourceHash) {
    t.Fail("maglev_table_size", "only for strategy = \"source-hash\"");
  }
  p.sticky = t.Bool("sticky", p.sticky);
  p.sticky_ttl_s = U32(t, "sticky_ttl_s", p.sticky_ttl_s, 1, 30 * 86'400);
  p.retries = U32(t, "retries", p.retries, 0, 100);
  p.connect_timeout_ms = U32(t, "connect_timeout_ms", p.connect_timeout_ms, 1, 600'000);
  p.answer_timeout_ms = U32(t, "answer_timeout_ms", p.answer_timeout_ms, 1, 600'000);
  p.proxy_protocol = t.Bool("proxy_protocol", p.proxy_protocol);
  p.on_down = t.OneOf("on_down", "none", {"none", "shutdown-sessions"}) == "shutdown-sessions"
                  ? OnDown::kShutdownSessions
                  : OnDown::kNone;
  p.on_up =
      t.OneOf("on_up", "none", {"none", "shutdown-backup-sessions"}) == "shutdown-backup-sessions"
          ? OnUp::kShutdownBackupSessions
          : OnUp::kNone;
  p.shutdown_jitter_ms = U32(t, "shutdown_jitter_ms", p.shutdown_jitter_ms, 0, 3'600'000);
  p.slow_start_s = U32(t, "slow_start_s", p.slow_start_s, 0, 3600);
  if (p.slow_start_s > 0 && p.strategy == balancer::StrategyKind::kSourceHash) {
    // Its ramp would move keys back and forth, and rebuild every worker's Maglev table at each
    // step: refused rather than silently ignored.
    t.Fail("slow_start_s", "not for strategy = \"source-hash\"");
  }
  std::set<std::string> names;
  for (const ConfigTable& b : t.Tables("backend")) {
    BackendConfig backend;
    backend.name = Name(b);
    if (!names.insert(backend.name).second) b.Fail("name", "expected a name unique in its pool");
    backend.address = Address(b, "address", Use::kConnect);
    backend.weight = U32(b, "weight", backend.weight, 0, 1000);
    backend.max_connections = U32(b, "max_connections", backend.max_connections, 0, 100'000'000);
    backend.backup = b.Bool("backup", backend.backup);
    if (b.Has("check_address")) {
      backend.check_address = Address(b, "check_address", Use::kConnect);
    }
    p.backends.push_back(std::move(backend));
  }
  if (p.backends.empty()) t.Fail("backend", "expected at least one [[pool.NAME.backend]]");
  if (std::all_of(p.backends.begin(), p.backends.end(), [](auto& b) { return b.backup; })) {
    t.Fail("backend", "expected at least one backend without backup = true");
  }
  if (p.on_up == OnUp::kShutdownBackupSessions &&
      std::none_of(p.backends.begin(), p.backends.end(), [](auto& b) { return b.backup; })) {
    t.Fail("on_up", "expected a pool with a backend that has backup = true");
  }
  // Every backend must own a slot, or one without would never be chosen, not even when the
  // others are full or failing.
  if (p.strategy == balancer::StrategyKind::kSourceHash &&
      p.maglev_table_size <= p.backends.size()) {
    t.Fail("maglev_table_size",
           fmt::format("expected more slots than the pool's {} backends", p.backends.size()));
  }
  if (std::optional<ConfigTable> h = t.Table("health")) ReadHealth(*h, p.health);
  if (std::optional<ConfigTable> passive = t.Table("passive")) {
    ReadPassive(*passive, p.health);
  }
  return p;
}

absl::StatusOr<ProxyConfig> Read(base::ConfigFile& file) {
  ProxyConfig c;
  ConfigTable root = file.root();
  if (std::optional<ConfigTable> p = root.Table("proxy")) {
    c.instance = p->String("instance", "");
    if (p->Has("admin")) c.admin = Address(*p, "admin", Use::kBind);
    c.admin_token = p->String("admin_token", "");
    if (p->Has("admin_token") && c.admin_token.size() < 16)
      p->Fail("admin_token", "expected at least 16 characters");
    c.threads = U32(*p, "threads", c.threads, 0, 256);
    c.yield_before_sleep = p->Bool("yield_before_sleep", c.yield_before_sleep);
    c.log_level =
        p->OneOf("log_level", c.log_level, {"trace", "debug", "info", "warn", "error", "off"});
    c.stop_grace_ms = U32(*p, "stop_grace_ms", c.stop_grace_ms, 0, 3'600'000);
    c.stop_spread_ms = U32(*p, "stop_spread_ms", c.stop_spread_ms, 0, 3'600'000);
    c.dns_refresh_s = U32(*p, "dns_refresh_s", c.dns_refresh_s, 0, 86'400);
  }
  if (std::optional<ConfigTable> r = root.Table("redis")) {
    c.redis.url = r->String("url", "");
    if (!c.redis.url.empty()) {
      absl::StatusOr<state::RedisOptions> url = state::ParseRedisUrl(c.redis.url);
      if (!url.ok()) r->Fail("url", std::string(url.status().message()));
    }
    c.redis.prefix = r->String("prefix", c.redis.prefix);
    c.redis.health_policy = r->OneOf("health_policy", c.redis.health_policy, {"any", "majority"});
    c.redis.command_timeout_ms =
        U32(*r, "command_timeout_ms", c.redis.command_timeout_ms, 10, 60'000);
    c.redis.sticky_cache_ms = U32(*r, "sticky_cache_ms", c.redis.sticky_cache_ms, 0, 60'000);
  }
  if (std::optional<ConfigTable> pools = root.Table("pool")) {
    for (const auto& [name, table] : pools->NamedTables()) {
      if (!ValidName(name)) pools->Fail(name, kNameExpected);
      c.pools[name] = ReadPool(name, table);
    }
  }
  std::set<std::string> listener_names;
  std::vector<ConfigTable> listeners = root.Tables("listener");
  if (listeners.empty()) root.Fail("listener", "expected at least one [[listener]]");
  for (const ConfigTable& l : listeners) {
    ListenerConfig listener;
    listener.name = Name(l);
    if (!listener_names.insert(listener.name).second) l.Fail("name", "expected a unique name");
    listener.bind = Address(l, "bind", Use::kBind);
    for (const ListenerConfig& other : c.listeners) {
      if (Overlap(listener.bind, other.bind)) {
        l.Fail("bind", fmt::format("expected an address of its own: listener \"{}\" binds {}",
                                   other.name, other.bind.ToString()));
      }
    }
    listener.protocol =
        l.OneOf("protocol", "mqtt", {"mqtt", "tcp"}) == "tcp" ? Protocol::kTcp : Protocol::kMqtt;
    listener.pool = l.String("pool", "");
    auto pool = c.pools.find(listener.pool);
    if (pool == c.pools.end()) {
      l.Fail("pool",
             fmt::format("expected the name of a [pool.NAME] table, got \"{}\"", listener.pool));
    } else if (listener.protocol == Protocol::kTcp) {
      // Without MQTT there is no client id to hash or stick on.
      const PoolConfig& p = pool->second;
      bool needs_id = p.sticky || (p.strategy == balancer::StrategyKind::kSourceHash &&
                                   p.hash_key == HashKey::kClientId);
      if (needs_id) {
        l.Fail("pool",
               "a tcp listener needs a pool without sticky and without "
               "hash_key = \"client-id\" (no client id without MQTT)");
      }
    }
    listener.connect_timeout_ms =
        U32(l, "connect_timeout_ms", listener.connect_timeout_ms, 1, 600'000);
    listener.max_connect_bytes =
        U32(l, "max_connect_bytes", listener.max_connect_bytes, 64, 16 << 20);
    listener.accept_proxy_protocol = l.Bool("accept_proxy_protocol", false);
    if (listener.protocol == Protocol::kTcp) {  // about the CONNECT, or a PROXY header and it
      if (l.Has("max_connect_bytes")) l.Fail("max_connect_bytes", "only for protocol = \"mqtt\"");
      if (l.Has("connect_timeout_ms") && !listener.accept_proxy_protocol) {
        l.Fail("connect_timeout_ms", "only for protocol = \"mqtt\" or accept_proxy_protocol");
      }
    }
    listener.idle_timeout_s = U32(l, "idle_timeout_s", listener.idle_timeout_s, 0, 86'400 * 7);
    listener.max_connections = U32(l, "max_connections", listener.max_connections, 0, 100'000'000);
    listener.max_connection_rate =
        U32(l, "max_connection_rate", listener.max_connection_rate, 0, 1'000'000);
    listener.access_log = l.Bool("access_log", listener.access_log);
    c.listeners.push_back(std::move(listener));
  }
  if (absl::Status s = file.Finish(); !s.ok()) return s;
  if (c.instance.empty()) {
    // Unique among the proxies sharing a Redis without anyone choosing: host and process.
    char host[256] = "proxy";
    gethostname(host, sizeof host - 1);
    c.instance = fmt::format("{}-{}", host, getpid());
  }
  return c;
}

}  // namespace

absl::StatusOr<ProxyConfig> LoadProxyConfig(const std::string& path) {
  absl::StatusOr<std::unique_ptr<base::ConfigFile>> file = base::ConfigFile::Load(path);
  if (!file.ok()) return file.status();
  return Read(**file);
}

absl::StatusOr<ProxyConfig> ParseProxyConfig(const std::string& text, const std::string& name) {
  absl::StatusOr<std::unique_ptr<base::ConfigFile>> file = base::ConfigFile::Parse(text, name);
  if (!file.ok()) return file.status();
  return Read(**file);
}

std::string_view StrategyName(balancer::StrategyKind kind) {
  switch (kind) {
    case balancer::StrategyKind::kWeightedRoundRobin:
      return "weighted-round-robin";
    case balancer::StrategyKind::kLeastConnections:
      return "least-connections";
    case balancer::StrategyKind::kSourceHash:
      return "source-hash";
  }
  return "?";
}

}  // namespace proxy
