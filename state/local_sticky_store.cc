// LocalStickyStore.
#include "state/local_sticky_store.h"

#include <fmt/format.h>

#include "absl/hash/hash.h"

namespace state {

namespace asio = boost::asio;

std::string LocalStickyStore::Key(std::string_view pool, std::string_view client_id) {
  return fmt::format("{}\n{}", pool, client_id);  // '\n' cannot occur in a pool name
}

LocalStickyStore::Shard& LocalStickyStore::ShardOf(const std::string& key) {
  return shards_[absl::Hash<std::string>{}(key) % kShards];
}

std::optional<std::string> LocalStickyStore::FindAt(std::string_view pool,
                                                    std::string_view client_id,
                                                    Clock::time_point now,
                                                    Clock::duration max_age) {
  std::string key = Key(pool, client_id);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) return std::nullopt;
  if (it->second.expires_at <= now) {
    shard.records.erase(it);
    return std::nullopt;
  }
  if (now - it->second.stored_at > max_age) return std::nullopt;
  return it->second.backend;
}

void LocalStickyStore::StoreAt(std::string_view pool, std::string_view client_id,
                               std::string_view backend, std::chrono::seconds ttl,
                               Clock::time_point now) {
  std::string key = Key(pool, client_id);
  Shard& shard = ShardOf(key);
  {
    std::lock_guard lock(shard.mutex);
    shard.records[key] = Record{std::string(backend), now + ttl, now};
  }
  SweepAnother(shard, now);
}

std::string LocalStickyStore::BindAt(std::string_view pool, std::string_view client_id,
                                     std::string_view backend, bool only_if_absent,
                                     std::chrono::seconds ttl, Clock::time_point now) {
  std::string key = Key(pool, client_id);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mutex);
  Record& r = shard.records[key];
  bool live = !r.backend.empty() && r.expires_at > now;
  if (!live || !only_if_absent) r.backend = std::string(backend);
  r.expires_at = now + ttl;
  r.stored_at = now;
  std::string holder = r.backend;
  SweepAnother(shard, now);
  return holder;
}

void LocalStickyStore::TouchAt(std::string_view pool, std::string_view client_id,
                               std::chrono::seconds ttl, Clock::time_point now) {
  std::string key = Key(pool, client_id);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.records.find(key);
  if (it != shard.records.end() && it->second.expires_at > now) it->second.expires_at = now + ttl;
}

void LocalStickyStore::Sweep(Shard& shard, Clock::time_point now) {
  absl::erase_if(shard.records, [now](const auto& kv) { return kv.second.expires_at <= now; });
}

void LocalStickyStore::SweepAnother(const Shard& written, Clock::time_point now) {
  // Keep memory bounded by what is live: the writes sweep the shards in turn, skipping one that
  // is busy (or holds the caller's lock). A sweep walks the whole shard, so a shard is swept at
  // most once per interval, however many writes come.
  Shard& other = shards_[sweep_next_.fetch_add(1) % kShards];
  if (&other != &written && other.mutex.try_lock()) {
    if (now - other.swept_at >= kSweepInterval) {
      Sweep(other, now);
      other.swept_at = now;
    }
    other.mutex.unlock();
  }
}

size_t LocalStickyStore::size() {
  size_t n = 0;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.records.size();
  }
  return n;
}

asio::awaitable<std::optional<std::string>> LocalStickyStore::Find(std::string_view pool,
                                                                   std::string_view client_id) {
  co_return FindAt(pool, client_id, Clock::now());
}

asio::awaitable<std::string> LocalStickyStore::Bind(std::string_view pool,
                                                    std::string_view client_id,
                                                    std::string_view backend, bool only_if_absent,
                                                    std::chrono::seconds ttl) {
  co_return BindAt(pool, client_id, backend, only_if_absent, ttl, Clock::now());
}

void LocalStickyStore::Touch(std::string_view pool, std::string_view client_id,
                             std::chrono::seconds ttl) {
  TouchAt(pool, client_id, ttl, Clock::now());
}

}  // namespace state
