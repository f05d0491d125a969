// RedisStickyStore.
#include "state/redis_sticky_store.h"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

namespace state {

namespace asio = boost::asio;
using Clock = LocalStickyStore::Clock;

namespace {
std::string Millis(std::chrono::seconds ttl) {
  return std::to_string(std::chrono::milliseconds(ttl).count());
}
}  // namespace

RedisStickyStore::RedisStickyStore(RedisKeys keys, std::vector<ThreadClient> clients,
                                   std::chrono::milliseconds cache_ttl)
    : keys_(std::move(keys)), cache_ttl_(cache_ttl) {
  for (ThreadClient& c : clients) {
    auto t = std::make_unique<PerThread>(
        PerThread{.io = c.io, .client = c.client, .retry = asio::steady_timer(*c.io)});
    PerThread* raw = t.get();
    c.client->OnConnect([this, raw] { Retry(raw); });
    threads_.push_back(std::move(t));
  }
}

void RedisStickyStore::Retry(PerThread* t) {
  t->retry.expires_at(asio::steady_timer::time_point::min());  // cancelled, and not armed
  for (auto& [key, u] : t->failed)
    t->unsynced.emplace(key, std::move(u));
  t->failed.clear();
  Replay(t);
}

void RedisStickyStore::Replay(PerThread* t) {
  if (!t->client->connected() || t->in_flight > 0) return;
  size_t n = std::min(PerThread::kReplayBatch, t->unsynced.size());
  t->in_flight = n;
  auto taken = std::make_shared<bool>(true);  // every write of the batch
  for (size_t i = 0; i < n; ++i) {
    auto entry = t->unsynced.extract(t->unsynced.begin());
    PerThread::Unsynced& u = entry.mapped();
    std::vector<std::string> set = {"SET", entry.key(), u.backend, "PX", Millis(u.ttl)};
    if (u.only_if_absent) set.push_back("NX");
    t->client->Command(std::move(set), [this, t, taken, key = std::move(entry.key()),
                                        u = std::move(u)](absl::StatusOr<RedisReply> r) {
      if (!r.ok()) {
        t->failed.emplace(key, u);  // unless bound again since
        *taken = false;
      }
      if (--t->in_flight > 0) return;
      if (*taken) {
        // Posted: a connection that failed answers every call at once, from within the call.
        asio::post(*t->io, [this, t] { Replay(t); });
      } else {
        RetryLater(t);
      }
      Count(t);
    });
  }
  Count(t);
}

void RedisStickyStore::RetryLater(PerThread* t) {
  // A lost connection sends it all again when it comes back.
  if (!t->client->connected() || t->retry.expiry() > asio::steady_timer::clock_type::now()) return;
  t->retry.expires_after(kRetryAfter);
  t->retry.async_wait([this, t](const boost::system::error_code& ec) {
    if (!ec) Retry(t);
  });
}

void RedisStickyStore::Count(PerThread* t) {
  bool pending = !t->unsynced.empty() || !t->failed.empty() || t->in_flight > 0;
  if (pending == t->pending) return;
  t->pending = pending;
  if (pending) {
    pending_threads_.fetch_add(1);
  } else {
    pending_threads_.fetch_sub(1);
  }
}

RedisStickyStore::PerThread* RedisStickyStore::Current(const asio::any_io_executor& executor) {
  auto& context = asio::query(executor, asio::execution::context);
  for (auto& t : threads_) {
    if (static_cast<asio::execution_context*>(t->io) == &context) return t.get();
  }
  return nullptr;
}

asio::awaitable<std::optional<std::string>> RedisStickyStore::Find(std::string_view pool,
                                                                   std::string_view client_id) {
  Clock::time_point now = Clock::now();
  if (auto cached = local_.FindAt(pool, client_id, now, cache_ttl_)) co_return cached;
  PerThread* t = Current(co_await asio::this_coro::executor);
  if (t == nullptr || !t->client->connected()) co_return local_.FindAt(pool, client_id, now);
  if (pending_threads_.load() > 0) {
    // Redis may not have it yet.
    if (auto cached = local_.FindAt(pool, client_id, now)) co_return cached;
  }
  std::string owned_pool(pool), owned_id(client_id);
  // Named vectors around co_await: GCC 12 miscompiles braced lists of literals there.
  std::vector<std::string> get = {"GET", keys_.Sticky(pool, client_id)};
  absl::StatusOr<RedisReply> r = co_await t->client->Call(std::move(get));
  if (!r.ok()) co_return local_.FindAt(owned_pool, owned_id, Clock::now());
  if (r->nil()) co_return std::nullopt;
  // Cached for as long as the record is sure to live: the caller touches it right away.
  local_.StoreAt(owned_pool, owned_id, r->str, std::chrono::seconds(60), Clock::now());
  co_return r->str;
}

asio::awaitable<std::string> RedisStickyStore::Bind(std::string_view pool,
                                                    std::string_view client_id,
                                                    std::string_view backend, bool only_if_absent,
                                                    std::chrono::seconds ttl) {
  std::string owned_pool(pool), owned_id(client_id), owned_backend(backend);
  std::string key = keys_.Sticky(pool, client_id);
  PerThread* t = Current(co_await asio::this_coro::executor);
  auto fallback = [&] {
    std::string holder =
        local_.BindAt(owned_pool, owned_id, owned_backend, only_if_absent, ttl, Clock::now());
    if (t == nullptr) return holder;
    if (auto it = t->unsynced.find(key); it != t->unsynced.end()) {
      // A re-binding (overwrite) stays one, whatever binding of the key follows it.
      it->second = {holder, ttl, only_if_absent && it->second.only_if_absent};
    } else if (t->unsynced.size() < PerThread::kMaxUnsynced) {
      t->unsynced.emplace(key, PerThread::Unsynced{holder, ttl, only_if_absent});
    }
    Count(t);
    RetryLater(t);  // refused by a Redis that stays connected
    return holder;
  };
  if (t == nullptr || !t->client->connected()) co_return fallback();
  std::vector<std::string> set = {"SET", key, owned_backend, "PX", Millis(ttl)};
  if (only_if_absent) set.push_back("NX");
  absl::StatusOr<RedisReply> r = co_await t->client->Call(std::move(set));
  if (!r.ok()) co_return fallback();
  t->unsynced.erase(key);  // superseded
  t->failed.erase(key);
  Count(t);
  std::string holder = owned_backend;
  if (r->nil()) {  // NX lost: another proxy recorded this client first; follow it
    std::vector<std::string> get = {"GET", key};
    absl::StatusOr<RedisReply> g = co_await t->client->Call(std::move(get));
    if (!g.ok()) co_return fallback();
    if (!g->nil()) holder = g->str;
  }
  local_.StoreAt(owned_pool, owned_id, holder, ttl, Clock::now());
  co_return holder;
}

void RedisStickyStore::Touch(std::string_view pool, std::string_view client_id,
                             std::chrono::seconds ttl) {
  local_.TouchAt(pool, client_id, ttl, Clock::now());
  // Touch runs on the tunnel's thread; any thread's client will do, but use its own.
  for (auto& t : threads_) {
    if (!t->io->get_executor().running_in_this_thread()) continue;
    if (t->client->connected()) {
      t->client->Command({"PEXPIRE", keys_.Sticky(pool, client_id), Millis(ttl)},
                         [](absl::StatusOr<RedisReply>) {});
    }
    return;
  }
}

}  // namespace state
