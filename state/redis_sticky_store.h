// The sticky table in Redis, shared by every proxy of the tier, with the in-process table in
// front of it as a cache and behind it as the fallback.
//
//   Find   a record confirmed in the last `cache_ttl` comes from the cache; else GET from Redis
//          (and cached); while Redis is unreachable, or records bound meanwhile are still being
//          written back, the cache answers whatever its age.
//   Bind   SET key backend NX PX ttl: the first proxy to record a new client wins, and GET tells
//          the others who did, so that they follow it. Overwrites are plain SET PX.
//   Touch  PEXPIRE, fire and forget.
//
// While Redis is unreachable the proxy keeps binding in its cache; those records are written
// back with SET NX when Redis returns (never overwriting what another proxy recorded meanwhile),
// a batch at a time, the next once the last is answered, so that the calls of new clients do not
// wait behind them all (nor time out, which would drop the connection and the rest with it). A
// write that fails stops the write-back; it goes again at the next connection, or, refused by a
// Redis that stays connected (out of memory, read-only), kRetryAfter later. So does a binding
// that Redis refused.
//
// Each I/O thread has its own Redis connection; calls use the one of the thread they run on.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "state/local_sticky_store.h"
#include "state/redis_client.h"
#include "state/redis_keys.h"
#include "state/sticky_store.h"

namespace state {

class RedisStickyStore : public StickyStore {
 public:
  struct ThreadClient {
    boost::asio::io_context* io;
    std::shared_ptr<RedisClient> client;
  };

  RedisStickyStore(RedisKeys keys, std::vector<ThreadClient> clients,
                   std::chrono::milliseconds cache_ttl = std::chrono::milliseconds(1000));

  boost::asio::awaitable<std::optional<std::string>> Find(std::string_view pool,
                                                          std::string_view client_id) override;
  boost::asio::awaitable<std::string> Bind(std::string_view pool, std::string_view client_id,
                                           std::string_view backend, bool only_if_absent,
                                           std::chrono::seconds ttl) override;
  void Touch(std::string_view pool, std::string_view client_id, std::chrono::seconds ttl) override;

 private:
  struct PerThread {
    boost::asio::io_context* io;
    std::shared_ptr<RedisClient> client;
    // Bound while Redis was unreachable, by key, the latest binding: written back when it
    // returns. At most kMaxUnsynced keys; past that a binding stays local only.
    struct Unsynced {
      std::string backend;
      std::chrono::seconds ttl;
      bool only_if_absent;  // a failover's re-binding overwrites what Redis holds
    };
    static constexpr size_t kMaxUnsynced = 100'000;
    static constexpr size_t kReplayBatch = 500;
    absl::flat_hash_map<std::string, Unsynced> unsynced;  // not yet sent
    absl::flat_hash_map<std::string, Unsynced> failed;    // sent, not taken: to be sent again
    size_t in_flight = 0;                                 // of the batch being written
    bool pending = false;                                 // counted in pending_threads_
    boost::asio::steady_timer retry;  // while connected; armed while its expiry is ahead
  };
  static constexpr std::chrono::seconds kRetryAfter{1};

  PerThread* Current(const boost::asio::any_io_executor& executor);
  // Writes back the next batch of `t`'s unsynced records; the next follows when all of it was
  // taken.
  void Replay(PerThread* t);
  // Sends what failed again (unless bound again since), and goes on with the write-back.
  void Retry(PerThread* t);
  // Retry in kRetryAfter, unless already due or the connection is lost (its return retries).
  void RetryLater(PerThread* t);
  // Keeps pending_threads_ up to date with what `t` has left to write back.
  void Count(PerThread* t);

  RedisKeys keys_;
  std::vector<std::unique_ptr<PerThread>> threads_;
  std::chrono::milliseconds cache_ttl_;
  LocalStickyStore local_;
  // Threads with records bound during an outage not yet written back: Redis may lack a record
  // that the cache, which all threads share, has.
  std::atomic<size_t> pending_threads_{0};
};

}  // namespace state
