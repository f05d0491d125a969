// Runs the health checks of every backend and turns check results and passive signals into the
// `available` flag the workers read, on the control thread (worker 0's io_context), which owns
// every backend's HealthState.
//
// On each transition it logs, counts, bumps the pool's generation (strategies rebuild), and tells
// its listener (the Proxy), which closes the sessions of a backend gone down when the pool says
// on_down = "shutdown-sessions" (failback, on_up, watches the pools on its own: failback.h). A
// backend that comes up in a pool with slow start has its weight ramped in tenths over
// slow_start_s.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "health/health_state.h"
#include "proxy/pool.h"

namespace proxy {

class HealthManager {
 public:
  using EventHandler =
      std::function<void(const Pool& pool, BackendState& backend, health::Event event)>;

  HealthManager(boost::asio::io_context& control, std::string instance, EventHandler on_event);
  ~HealthManager();

  // Watches the backends of `pools`: starts checks for new backends, keeps those of backends
  // watched already (their state survives), stops the rest. On the control thread.
  void Watch(const std::map<std::string, std::shared_ptr<const Pool>>& pools);
  void Stop();

  // From any thread.
  void ReportConnectFailure(const std::shared_ptr<BackendState>& backend);
  void ReportConnectSuccess(const std::shared_ptr<BackendState>& backend);

  struct Monitor;  // one backend's checks and timers (health_manager.cc)

 private:
  std::shared_ptr<Monitor> StartMonitor(const std::shared_ptr<const Pool>& pool,
                                        const std::shared_ptr<BackendState>& backend);
  // `why`: what the last check or connect said, for the log, if it failed.
  void Apply(Monitor& m, std::optional<health::Event> event, std::string_view why = {});
  void ScheduleEjectionEnd(const std::shared_ptr<Monitor>& m);
  void RampSlowStart(const std::shared_ptr<Monitor>& m);

  boost::asio::io_context& control_;
  std::string instance_;
  EventHandler on_event_;
  std::map<BackendState*, std::shared_ptr<Monitor>> monitors_;
};

}  // namespace proxy
