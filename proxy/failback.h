// on_up = "shutdown-backup-sessions" (HAProxy's on-marked-up shutdown-backup-sessions): once a
// pool's first tier (its backends that are not backups) can take connections again after a time
// when none could, the clients the backups took meanwhile are closed, spread over the pool's
// shutdown jitter, so that they reconnect to it.
//
// "Can take connections" is BackendState::usable(): up by this proxy's checks, not ejected, not
// down for the tier, not draining, with weight. Every way back counts alike: a check's verdict,
// the end of an ejection, the tier's verdict through Redis, an operator's enable or weight, a
// reload that adds a backend. Rather than hook each of those, the control thread looks at the
// pools every 100 ms, while one of them has on_up set. A first tier that is only full
// (max_connections) never sent its overflow back: it stays where it is.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "proxy/pool.h"

namespace proxy {

class Failback {
 public:
  // Closes the sessions of `backup`, a backup of `pool`.
  using Release = std::function<void(const Pool& pool, BackendState& backup)>;

  Failback(boost::asio::io_context& control, Release release);

  // The pools in force, at start and at each reload; on the control thread. A pool's first tier
  // that could take no connection at the last look and can now (a reload that adds a backend to
  // it, say) fails back at the next look.
  void Watch(const std::map<std::string, std::shared_ptr<const Pool>>& pools);
  void Stop();

 private:
  void Look();
  void Schedule();

  boost::asio::steady_timer timer_;
  Release release_;
  std::map<std::string, std::shared_ptr<const Pool>> pools_;
  std::map<std::string, bool> open_;  // by pool: its first tier could take connections
  bool looking_ = false;              // a pool has on_up set
  bool stopped_ = false;
};

}  // namespace proxy
