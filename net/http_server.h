// A small HTTP/1.1 server for the admin endpoints (/healthz, /metrics, /api/...), on Beast.
//
// The handler is a plain function from request to response, called on the server's io_context
// thread; it must not block. Requests are bounded (64 KiB body, 10 s to arrive) and so are the
// connections (64): past that, the one that has waited longest for its next request is closed
// for the new one, so that a slow, idle or hostile client cannot hold the admin port. Beast stays
// inside http_server.cc.
//
//   HttpServer admin(io, [](const HttpRequest& r) {
//     if (r.method == "GET" && r.path == "/healthz") return HttpResponse{200, "text/plain",
//     "ok\n"}; return HttpResponse{404, "text/plain", "not found\n"};
//   });
//   if (absl::Status s = admin.Listen({"127.0.0.1", 8080}); !s.ok()) ...
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/host_port.h"

namespace boost::asio {
class io_context;
}

namespace net {

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string path;           // the target without its query string
  std::string query;          // after '?', empty if none
  std::string authorization;  // the Authorization header, empty if none
  std::string body;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Further header fields: WWW-Authenticate of a 401, Allow of a 405.
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Port 0 picks a free port; port() tells which.
  [[nodiscard]] absl::Status Listen(const base::HostPort& address);
  uint16_t port() const;
  // Stops accepting; requests in progress complete. Call on the io_context's thread.
  void Close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace net
