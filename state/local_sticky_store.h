// The sticky table in process memory: for a proxy without Redis, and for tests. Sharded by hash
// of the key, one mutex per shard, so connections on different threads rarely meet on a lock.
// Expired records are removed lazily when looked up, and by sweeps: each write (Bind, and Store: a
// Redis-backed store's cache writes only through Store while Redis is up) looks at one shard in
// turn and sweeps it if it was not swept for kSweepInterval. So a write costs the same whatever
// the table holds; an expired record goes at the first of its shard's turns (every kShards-th
// write) after kSweepInterval, or when looked up.
#pragma once

#include <array>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "state/sticky_store.h"

namespace state {

class LocalStickyStore : public StickyStore {
 public:
  using Clock = std::chrono::steady_clock;

  boost::asio::awaitable<std::optional<std::string>> Find(std::string_view pool,
                                                          std::string_view client_id) override;
  boost::asio::awaitable<std::string> Bind(std::string_view pool, std::string_view client_id,
                                           std::string_view backend, bool only_if_absent,
                                           std::chrono::seconds ttl) override;
  void Touch(std::string_view pool, std::string_view client_id, std::chrono::seconds ttl) override;

  // The synchronous core, for tests and the coroutines above; `now` passed in.
  // The record if it is live and, with `max_age`, was stored or confirmed that recently.
  std::optional<std::string> FindAt(std::string_view pool, std::string_view client_id,
                                    Clock::time_point now,
                                    Clock::duration max_age = Clock::duration::max());
  // Stores what an authority (Redis) said the record is.
  void StoreAt(std::string_view pool, std::string_view client_id, std::string_view backend,
               std::chrono::seconds ttl, Clock::time_point now);
  std::string BindAt(std::string_view pool, std::string_view client_id, std::string_view backend,
                     bool only_if_absent, std::chrono::seconds ttl, Clock::time_point now);
  void TouchAt(std::string_view pool, std::string_view client_id, std::chrono::seconds ttl,
               Clock::time_point now);
  size_t size();

 private:
  struct Record {
    std::string backend;
    Clock::time_point expires_at;
    Clock::time_point stored_at;
  };
  struct Shard {
    std::mutex mutex;
    absl::flat_hash_map<std::string, Record> records;
    Clock::time_point swept_at;
  };
  static constexpr size_t kShards = 32;
  static constexpr Clock::duration kSweepInterval = std::chrono::seconds(10);
  static std::string Key(std::string_view pool, std::string_view client_id);
  Shard& ShardOf(const std::string& key);
  void Sweep(Shard& shard, Clock::time_point now);
  // Sweeps the next shard in turn if it is due, unless it is `written`, which the caller may
  // hold.
  void SweepAnother(const Shard& written, Clock::time_point now);

  std::array<Shard, kShards> shards_;
  std::atomic<size_t> sweep_next_{0};
};

}  // namespace state
