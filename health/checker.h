// A health checker probes one backend once: the interface, and the factory of the three kinds.
//
//   tcp   the backend accepts a TCP connection
//   mqtt  it answers CONNECT (with credentials, if given) with a successful CONNACK (then gets a
//         DISCONNECT)
//   http  GET `path` answers 2xx (e.g. the broker's /healthz on its admin port)
//
// A probe is a coroutine on the caller's io_context; it never takes longer than `timeout`.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace health {

struct CheckResult {
  bool ok = false;
  std::string error;  // why not, when not ok
  // The proxy could not run the probe (out of descriptors, buffers or local ports): no verdict
  // on the backend either way.
  bool inconclusive = false;
  std::chrono::microseconds latency{0};
};

enum class CheckKind { kTcp, kMqtt, kHttp };

struct CheckSpec {
  CheckKind kind = CheckKind::kTcp;
  std::string http_path = "/healthz";
  std::string mqtt_client_id = "switchboard-health";
  // For a broker that refuses anonymous clients. A password only with a user name (MQTT 3.1.1
  // §3.1.2.9).
  std::optional<std::string> mqtt_username;
  std::optional<std::string> mqtt_password;
  // The backend expects a PROXY protocol v2 header first (its pool sends one): an mqtt check then
  // starts with a LOCAL one, as HAProxy's check-send-proxy does.
  bool proxy_protocol = false;
};

class Checker {
 public:
  virtual ~Checker() = default;
  virtual boost::asio::awaitable<CheckResult> Check(boost::asio::ip::tcp::endpoint target,
                                                    std::chrono::milliseconds timeout) = 0;
};

std::unique_ptr<Checker> MakeChecker(const CheckSpec& spec);

}  // namespace health
