// Which backend holds which client's session: the sticky table of a pool.
//
// A proxy asks Find() when a client connects; if the backend found is usable, the client goes
// back to it. Otherwise the pool's strategy picks one and Bind(..., only_if_absent = true)
// records it, unless another proxy recorded one first for the same new client id at the same
// moment: then Bind returns that one, and both proxies agree. After a failover, Bind(...,
// only_if_absent = false) overwrites. A record expires `ttl` after it was last bound or touched;
// the proxy touches the records of its connected clients periodically and once more when they
// disconnect, so a record lives while its client is connected and `ttl` after.
//
// Implementations: in-process (local_sticky_store.h) and Redis (redis_sticky_store.h). Calls are
// coroutines so that the Redis implementation never blocks an I/O thread; they are safe from any
// thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace state {

class StickyStore {
 public:
  virtual ~StickyStore() = default;

  virtual boost::asio::awaitable<std::optional<std::string>> Find(std::string_view pool,
                                                                  std::string_view client_id) = 0;
  // Records `backend` for the client (see above) and returns the backend that holds the record.
  virtual boost::asio::awaitable<std::string> Bind(std::string_view pool,
                                                   std::string_view client_id,
                                                   std::string_view backend, bool only_if_absent,
                                                   std::chrono::seconds ttl) = 0;
  // Extends the record's life to `ttl` from now.
  virtual void Touch(std::string_view pool, std::string_view client_id,
                     std::chrono::seconds ttl) = 0;
};

}  // namespace state
