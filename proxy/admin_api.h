// The proxy's admin HTTP API, on the control thread:
//
//   GET  /healthz                      200 while serving, 503 from a stop signal on
//   GET  /metrics                      Prometheus text: listeners, backends, health checks
//   GET  /api/pools                    JSON: every pool, its strategy and its backends
//   POST /api/backends/NAME/drain      no new connections to NAME; existing ones stay
//   POST /api/backends/NAME/enable     ends a drain
//   POST /api/backends/NAME/weight     body: a weight, "3" or {"weight": 3}
//   POST /api/backends/NAME/shutdown-sessions
//                                      this proxy's clients of NAME closed over the jitter
//
// NAME applies to every pool with a backend of that name; 404 when there is none. Answers of the
// POST endpoints are the backend's JSON. With [proxy] admin_token, a POST must carry
// "Authorization: Bearer TOKEN" (401 otherwise); the GETs stay open to health checkers and
// Prometheus.
#pragma once

#include "net/http_server.h"

namespace proxy {

class Proxy;

net::HttpResponse HandleAdmin(Proxy& proxy, const net::HttpRequest& request);

}  // namespace proxy
