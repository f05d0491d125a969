// The access log: with a listener's access_log = true, one line per client connection when it
// ends (HAProxy's tcplog, in words), from the logger "access", at info whatever log_level says:
//
//   ... info [access] mqtt 127.0.0.1:50432 "sensor-7" brokers/b1 1532ms in=1234 out=567 client
//   closed
//   ... info [access] mqtt 127.0.0.1:50433 - brokers/- 3ms in=31 out=0 rejected: no_backend
//
// The listener, the client's address, its MQTT client id (quoted and escaped: it is the
// client's to choose; `-` in tcp mode or before a CONNECT was read), the pool and backend (`-`
// for none reached), how long the connection lasted, the bytes from and to the client, and how
// it ended (proxy/session_end.h), or why it was not served (a listener rejection reason). In mqtt
// mode the line comes when the broker's side ends; the client's may linger a moment after.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace proxy {

struct AccessRecord {
  std::string_view listener;
  boost::asio::ip::tcp::endpoint client;
  std::optional<std::string_view> client_id;
  std::string_view pool;
  std::string_view backend;                           // empty: none reached
  std::chrono::steady_clock::time_point accepted_at;  // the line says how long since
  uint64_t bytes_from_client = 0;
  uint64_t bytes_to_client = 0;
  std::string_view outcome;  // "client closed", "rejected: no_backend", ...
};

void LogAccess(const AccessRecord& r);

}  // namespace proxy
