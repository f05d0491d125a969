// What every thread of the proxy knows about one backend, lock-free: its address, weight, whether
// it may be chosen, and its counters. One object per backend, shared by the pool objects of
// successive configurations as long as the backend keeps its name and address, so that a reload
// keeps its health, its counts and the operator's changes.
//
// Writers: the control thread (health verdicts, operator changes); every I/O thread (counters).
// Readers: every thread. All relaxed atomics: each field is a fact on its own.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "health/health_state.h"
#include "proxy/config.h"
#include "proxy/session_end.h"

namespace proxy {

struct BackendState {
  BackendState(BackendConfig config, boost::asio::ip::tcp::endpoint endpoint,
               boost::asio::ip::tcp::endpoint check_endpoint, const health::Policy& policy)
      : config(std::move(config)),
        endpoint(endpoint),
        check_endpoint(check_endpoint),
        weight(this->config.weight),
        max_connections(this->config.max_connections),
        health(policy),
        file_weight(this->config.weight) {}

  // As first loaded: a reload may change its check_address, and whether it is a backup (which
  // the Pool answers).
  const BackendConfig config;
  const boost::asio::ip::tcp::endpoint endpoint;
  // Where its active checks go; a reload may change it. Control thread only.
  boost::asio::ip::tcp::endpoint check_endpoint;

  std::atomic<uint32_t> weight;           // configured, or set through the admin API
  std::atomic<uint32_t> max_connections;  // as the file says at the last (re)load; 0: none
  std::atomic<bool> draining{false};      // no new connections; existing ones stay
  std::atomic<bool> retired{false};       // a reload dropped it: its connections are closed
  // Times its connections were closed (on_down, on_up for a backup, the admin API), and why the
  // last time: a client being connected to it meanwhile goes the same way.
  std::atomic<uint64_t> shutdowns{0};
  std::atomic<SessionEnd> shutdown_why{SessionEnd::kBackendDown};
  std::atomic<bool> available{true};        // health: up and not ejected
  std::atomic<int64_t> up_since_ns{0};      // steady clock, for slow start; 0: long up
  std::atomic<int64_t> active{0};           // this proxy's open connections to it
  std::atomic<int64_t> remote_active{0};    // other proxies' (shared state), 0 when alone
  std::atomic<bool> failure_streak{false};  // a connect failure was reported since a success
  // The tier's health policy says down, whatever this proxy's own checks say (shared state).
  std::atomic<bool> down_for_all{false};

  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> connect_errors{0};
  std::atomic<uint64_t> bytes_to_backend{0};
  std::atomic<uint64_t> bytes_to_client{0};
  std::atomic<uint64_t> checks_total{0};
  std::atomic<uint64_t> checks_failed{0};
  std::atomic<uint64_t> check_latency_us{0};  // of the last check
  std::atomic<uint64_t> transitions{0};
  std::atomic<uint64_t> ejections_held{0};  // failures that would have ejected, over the cap

  // Owned by the control thread.
  health::HealthState health;
  // The weight the configuration file gave at the last (re)load; `config` keeps the first one. A
  // reload that changes it overrides the operator's weight; one that leaves it does not.
  uint32_t file_weight;
  // A weight set through the admin API (here or on another proxy of the tier); control thread.
  std::optional<uint32_t> operator_weight;

  const std::string& name() const { return config.name; }
  // Connections over the tier (this proxy's and the others' as last reported).
  int64_t load() const {
    return active.load(std::memory_order_relaxed) + remote_active.load(std::memory_order_relaxed);
  }
  // At max_connections: not chosen for a new connection, sticky or not.
  bool full() const {
    uint32_t max = max_connections.load(std::memory_order_relaxed);
    return max != 0 && load() >= max;
  }
  bool usable() const {
    return available.load(std::memory_order_relaxed) &&
           !down_for_all.load(std::memory_order_relaxed) &&
           !draining.load(std::memory_order_relaxed) && weight.load(std::memory_order_relaxed) > 0;
  }
  // What StateName answers, for the admin API and metrics.
  static constexpr std::string_view kStateNames[] = {"up", "draining", "ejected", "down"};
  std::string_view StateName() const;
};

}  // namespace proxy
