// Admin API handlers, /metrics rendering and the pools' JSON.
#include "proxy/admin_api.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <charconv>

#include "base/metrics_text.h"
#include "proxy/proxy.h"
#include "proxy/tier_sync.h"

namespace proxy {

namespace json = boost::json;

namespace {

net::HttpResponse Json(unsigned status, const json::value& v) {
  return {status, "application/json", json::serialize(v) + "\n"};
}

net::HttpResponse Error(unsigned status, std::string_view message) {
  return Json(status, json::object{{"error", message}});
}

net::HttpResponse MethodNotAllowed(std::string_view allow) {
  net::HttpResponse r = Error(405, fmt::format("use {}", allow));
  r.headers.emplace_back("Allow", allow);
  return r;
}

// Whether `authorization` carries `token` as a bearer token; anything goes without a token. The
// comparison takes as long whatever the first differing byte, so that timing does not spell the
// token out.
bool Authorized(std::string_view token, std::string_view authorization) {
  if (token.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) return false;
  std::string_view given = authorization.substr(kBearer.size());
  unsigned char diff = given.size() == token.size() ? 0 : 1;
  for (size_t i = 0; i < token.size(); ++i)
    diff |= static_cast<unsigned char>(token[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

json::object BackendJson(const Pool& pool, const BackendState& b) {
  return json::object{
      {"name", b.name()},
      {"backup", pool.IsBackup(b)},
      {"address", b.config.address.ToString()},
      {"weight", b.weight.load()},
      {"max_connections", b.max_connections.load()},
      {"state", b.StateName()},
      {"draining", b.draining.load()},
      {"active", b.active.load()},
      {"remote_active", b.remote_active.load()},
      {"down_for_all", b.down_for_all.load()},
      {"connections_total", b.connections_total.load()},
      {"connect_errors", b.connect_errors.load()},
  };
}

json::value PoolsJson(const Proxy& proxy) {
  json::array pools;
  for (const auto& [name, pool] : proxy.pools()) {
    const PoolConfig& c = pool->config();
    json::array backends;
    for (const auto& b : pool->backends())
      backends.push_back(BackendJson(*pool, *b));
    pools.push_back(json::object{
        {"name", name},
        {"strategy", StrategyName(c.strategy)},
        {"hash_key", c.hash_key == HashKey::kClientId ? "client-id" : "source-ip"},
        {"sticky", c.sticky},
        {"backends", std::move(backends)},
    });
  }
  return json::object{{"pools", std::move(pools)}};
}

std::string Metrics(const Proxy& proxy) {
  base::MetricsText m;
  m.Family("sb_proxy_up", "gauge", "1 until a stop signal (as /healthz: 0 during the grace).");
  m.Sample("sb_proxy_up", proxy.stopping() ? 0 : 1);

  if (proxy.shared_state_configured()) {
    m.Family("sb_proxy_degraded", "gauge",
             "1 while the shared state (Redis) is unreachable and the proxy routes on its last "
             "view.");
    m.Sample("sb_proxy_degraded", proxy.tier().degraded() ? 1 : 0);
    m.Family("sb_proxy_instance_shared", "gauge",
             "1 while another proxy of the tier has this one's instance name too: each overwrites "
             "the other's connection counts and health votes.");
    m.Sample("sb_proxy_instance_shared", proxy.tier().instance_shared() ? 1 : 0);
    m.Family("sb_proxy_tier_proxies", "gauge", "Live proxies of the tier, this one included.");
    m.Sample("sb_proxy_tier_proxies", proxy.tier().live_proxies());
  }
  auto per_listener = [&](const char* family, const char* type, const char* help, auto value) {
    m.Family(family, type, help);
    for (const auto& [name, c] : proxy.listener_counters())
      m.Sample(family, value(*c), {{"listener", name}});
  };
  per_listener("sb_proxy_listener_accepted_total", "counter", "Client connections accepted.",
               [](const ListenerCounters& c) { return c.accepted.load(); });
  per_listener("sb_proxy_listener_active_connections", "gauge",
               "Client connections open, including those still choosing a backend.",
               [](const ListenerCounters& c) { return c.active.load(); });
  per_listener("sb_proxy_listener_rate_limited_total", "counter",
               "Times a thread stopped accepting for max_connection_rate (the connections wait "
               "in the accept queue).",
               [](const ListenerCounters& c) { return c.rate_limited.load(); });
  m.Family("sb_proxy_listener_rejected_total", "counter",
           "Client connections closed before reaching a backend, by reason.");
  for (const auto& [name, c] : proxy.listener_counters()) {
    for (size_t r = 0; r < static_cast<size_t>(RejectReason::kCount); ++r) {
      m.Sample("sb_proxy_listener_rejected_total", c->rejected[r].load(),
               {{"listener", name}, {"reason", RejectReasonName(static_cast<RejectReason>(r))}});
    }
  }

  struct Gauge {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const BackendState&);
  };
  static const Gauge kBackend[] = {
      {"sb_proxy_backend_up", "gauge",
       "1 while this proxy's checks find the backend up and passive detection has not ejected "
       "it (sb_proxy_backend_state says whether it may be chosen).",
       [](const BackendState& b) { return b.available.load() ? 1.0 : 0.0; }},
      {"sb_proxy_backend_draining", "gauge", "1 while drained by an operator.",
       [](const BackendState& b) { return b.draining.load() ? 1.0 : 0.0; }},
      {"sb_proxy_backend_weight", "gauge", "Current weight.",
       [](const BackendState& b) { return double(b.weight.load()); }},
      {"sb_proxy_backend_active_connections", "gauge", "Open connections from this proxy.",
       [](const BackendState& b) { return double(b.active.load()); }},
      {"sb_proxy_backend_remote_active_connections", "gauge",
       "Open connections from the other proxies of the tier, as last reported.",
       [](const BackendState& b) { return double(b.remote_active.load()); }},
      {"sb_proxy_backend_down_for_all", "gauge",
       "1 while the tier's health policy takes the backend down.",
       [](const BackendState& b) { return b.down_for_all.load() ? 1.0 : 0.0; }},
      {"sb_proxy_backend_connections_total", "counter", "Connections established.",
       [](const BackendState& b) { return double(b.connections_total.load()); }},
      {"sb_proxy_backend_connect_errors_total", "counter",
       "Failed connects and connections reset at once (passive health signals).",
       [](const BackendState& b) { return double(b.connect_errors.load()); }},
      {"sb_proxy_backend_bytes_to_backend_total", "counter", "Bytes sent to the backend.",
       [](const BackendState& b) { return double(b.bytes_to_backend.load()); }},
      {"sb_proxy_backend_bytes_to_client_total", "counter", "Bytes sent to clients.",
       [](const BackendState& b) { return double(b.bytes_to_client.load()); }},
      {"sb_proxy_backend_checks_total", "counter", "Active health checks run.",
       [](const BackendState& b) { return double(b.checks_total.load()); }},
      {"sb_proxy_backend_checks_failed_total", "counter", "Active health checks failed.",
       [](const BackendState& b) { return double(b.checks_failed.load()); }},
      {"sb_proxy_backend_check_latency_seconds", "gauge", "Duration of the last health check.",
       [](const BackendState& b) { return double(b.check_latency_us.load()) / 1e6; }},
      {"sb_proxy_backend_transitions_total", "counter",
       "Health events: went down or came up (active checks), ejected or restored (passive); "
       "each logged. Not those a reload carries over.",
       [](const BackendState& b) { return double(b.transitions.load()); }},
      {"sb_proxy_backend_ejections_held_total", "counter",
       "Failures that would have ejected the backend, held back by max_ejection_percent.",
       [](const BackendState& b) { return double(b.ejections_held.load()); }},
  };
  for (const Gauge& g : kBackend) {
    m.Family(g.name, g.type, g.help);
    for (const auto& [pool_name, pool] : proxy.pools()) {
      for (const auto& b : pool->backends()) {
        m.Sample(g.name, g.value(*b), {{"pool", pool_name}, {"backend", b->name()}});
      }
    }
  }
  m.Family("sb_proxy_backend_state", "gauge",
           "1 for the backend's state, as /api/pools says it: up, draining (by an operator), "
           "ejected (passive detection) or down (checks, or the tier's verdict).");
  for (const auto& [pool_name, pool] : proxy.pools()) {
    for (const auto& b : pool->backends()) {
      std::string_view state = b->StateName();
      for (std::string_view s : BackendState::kStateNames) {
        m.Sample("sb_proxy_backend_state", state == s ? 1.0 : 0.0,
                 {{"pool", pool_name}, {"backend", b->name()}, {"state", s}});
      }
    }
  }
  return std::move(m).Take();
}

// Parses a weight from "3" or {"weight": 3}.
std::optional<uint32_t> ParseWeight(std::string_view body) {
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) {
    body.remove_suffix(1);
  }
  uint32_t weight = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), weight);
  if (ec == std::errc() && end == body.data() + body.size()) {
    return weight <= 1000 ? std::optional(weight) : std::nullopt;
  }
  boost::system::error_code jec;
  json::value v = json::parse(json::string_view(body.data(), body.size()), jec);
  if (jec || !v.is_object()) return std::nullopt;
  const json::value* w = v.as_object().if_contains("weight");
  if (w == nullptr || !w->is_int64() || w->as_int64() < 0 || w->as_int64() > 1000) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(w->as_int64());
}

net::HttpResponse BackendAction(Proxy& proxy, std::string_view name, std::string_view action,
                                std::string_view body) {
  std::optional<uint32_t> weight;
  if (action == "weight") {
    weight = ParseWeight(body);
    if (!weight)
      return Error(400, "body: expected a weight from 0 to 1000, as 3 or {\"weight\": 3}");
  } else if (action != "drain" && action != "enable" && action != "shutdown-sessions") {
    return Error(404, "unknown action: expected drain, enable, weight or shutdown-sessions");
  }
  json::array changed;
  for (const auto& [pool_name, pool] : proxy.pools()) {
    std::shared_ptr<BackendState> b = pool->Find(name);
    if (!b) continue;
    spdlog::info("admin: pool {} backend {}: {}{}", pool_name, name, action,
                 weight ? fmt::format(" {}", *weight) : "");
    if (action == "shutdown-sessions") {
      // This proxy's clients of the backend go, spread over the pool's jitter; nothing is
      // stored or shared (HAProxy's "shutdown sessions server").
      proxy.ShutdownSessions(*pool, *b, SessionEnd::kOperator);
    } else {
      if (action == "drain") b->draining.store(true);
      if (action == "enable") b->draining.store(false);
      if (weight) {
        b->weight.store(*weight);
        b->operator_weight = *weight;
      }
      pool->Touch();
      proxy.tier().OperatorChanged(*pool, *b);  // reaches the other proxies, outlives restarts
    }
    json::object o = BackendJson(*pool, *b);
    o["pool"] = pool_name;
    changed.push_back(std::move(o));
  }
  if (changed.empty()) return Error(404, fmt::format("no backend named \"{}\"", name));
  return Json(200, json::object{{"backends", std::move(changed)}});
}

}  // namespace

net::HttpResponse HandleAdmin(Proxy& proxy, const net::HttpRequest& r) {
  if (r.path == "/healthz" || r.path == "/metrics" || r.path == "/api/pools") {
    if (r.method != "GET") return MethodNotAllowed("GET");
    if (r.path == "/healthz") {
      return proxy.stopping() ? net::HttpResponse{503, "text/plain", "stopping\n"}
                              : net::HttpResponse{200, "text/plain", "ok\n"};
    }
    if (r.path == "/metrics") return {200, std::string(base::kMetricsContentType), Metrics(proxy)};
    return Json(200, PoolsJson(proxy));
  }
  constexpr std::string_view kBackends = "/api/backends/";
  if (r.path.rfind(kBackends, 0) == 0) {
    if (r.method != "POST") return MethodNotAllowed("POST");
    if (!Authorized(proxy.config().admin_token, r.authorization)) {
      net::HttpResponse denied = Error(401, "expected Authorization: Bearer ([proxy] admin_token)");
      denied.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"switchboard\"");
      return denied;
    }
    std::string_view rest = std::string_view(r.path).substr(kBackends.size());
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return Error(404, "expected /api/backends/NAME/ACTION");
    return BackendAction(proxy, rest.substr(0, slash), rest.substr(slash + 1), r.body);
  }
  return Error(404, "not found");
}

std::string_view RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kConnectTimeout:
      return "connect_timeout";
    case RejectReason::kMalformed:
      return "malformed_first_packet";
    case RejectReason::kNoBackend:
      return "no_backend";
    case RejectReason::kLocalResources:
      return "local_resources";
    case RejectReason::kClientLeft:
      return "client_left";
    case RejectReason::kMaxConnections:
      return "max_connections";
    case RejectReason::kProxyHeader:
      return "proxy_header";
    case RejectReason::kCount:
      break;
  }
  return "?";
}

}  // namespace proxy
