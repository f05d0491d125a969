// The http checker: healthy when GET `path` answers with a 2xx status, as the broker's /healthz
// does while it accepts connections.
#pragma once

#include <string>

#include "health/checker.h"

namespace health {

// The Host header of a request to `target`: address:port, an IPv6 address in brackets
// (RFC 9110 §7.2, RFC 3986 §3.2.2).
std::string HostHeader(const boost::asio::ip::tcp::endpoint& target);

class HttpChecker : public Checker {
 public:
  explicit HttpChecker(std::string path) : path_(std::move(path)) {}
  boost::asio::awaitable<CheckResult> Check(boost::asio::ip::tcp::endpoint target,
                                            std::chrono::milliseconds timeout) override;

 private:
  std::string path_;
};

}  // namespace health
