// Worker: acceptors, pool pickers, the tunnel registry.
#include "proxy/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <random>

#include "net/listen.h"
#include "proxy/client_session.h"
#include "proxy/health_manager.h"
#include "proxy/proxy.h"
#include "proxy/tunnel.h"

namespace proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct Worker::Acceptor {
  Acceptor(std::shared_ptr<const ListenerState> l, tcp::acceptor a, asio::io_context& io)
      : listener(std::move(l)), acceptor(std::move(a)), retry(io) {}
  std::shared_ptr<const ListenerState> listener;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
};

Worker::Worker(Proxy& proxy, size_t index, asio::io_context& io, bool yield_before_sleep)
    : proxy_(proxy),
      index_(index),
      io_(io),
      read_buffer_(64 * 1024),
      poller_(io, yield_before_sleep) {}

Worker::~Worker() = default;

void Worker::SetPools(const std::map<std::string, std::shared_ptr<const Pool>>& pools) {
  pickers_.clear();
  for (const auto& [name, pool] : pools)
    pickers_.emplace(name, PoolPicker(pool));
}

PoolPicker* Worker::picker(const std::string& pool) {
  auto it = pickers_.find(pool);
  return it == pickers_.end() ? nullptr : &it->second;
}

void Worker::Accept(std::shared_ptr<const ListenerState> listener, tcp::acceptor acceptor) {
  std::string name = listener->config.name;
  auto a = std::make_shared<Acceptor>(std::move(listener), std::move(acceptor), io_);
  acceptors_[name] = a;
  AcceptNext(a);
}

void Worker::UpdateListener(std::shared_ptr<const ListenerState> listener) {
  auto it = acceptors_.find(listener->config.name);
  if (it != acceptors_.end()) it->second->listener = std::move(listener);
}

namespace {

bool IsConnectionError(int error) {
  switch (error) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Worker::AcceptNext(const std::shared_ptr<Acceptor>& a) {
  // Wait for the listening socket, then accept what is there with accept4: the connections
  // never become Asio sockets (see raw_socket.h).
  a->acceptor.async_wait(tcp::acceptor::wait_read, [this, a](const boost::system::error_code& ec) {
    if (!a->acceptor.is_open() || ec == asio::error::operation_aborted) return;
    for (int i = 0; i < 64; ++i) {
      // max_connection_rate: a place first, so that what waits stays in the accept queue.
      const uint32_t rate = a->listener->config.max_connection_rate;
      ListenerCounters& counters = *a->listener->counters;
      if (rate > 0) {
        int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
        if (int64_t wait = counters.rate.Take(now, rate); wait > 0) {
          counters.rate_limited.fetch_add(1, std::memory_order_relaxed);
          RetryAccept(a, std::chrono::nanoseconds(wait));
          return;
        }
      }
      tcp::endpoint peer;
      socklen_t len = static_cast<socklen_t>(peer.capacity());
      int fd =
          ::accept4(a->acceptor.native_handle(), peer.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && rate > 0) counters.rate.Return(rate);  // no connection took the place
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        // Linux hands the pending network error of the one connection to accept (accept(2)):
        // that connection is gone, the next may be fine.
        if (IsConnectionError(errno)) continue;
        // Typically out of descriptors: back off instead of spinning on the error.
        spdlog::warn("listener {}: accept: {}", a->listener->config.name, std::strerror(errno));
        RetryAccept(a, std::chrono::milliseconds(100));
        return;
      }
      peer.resize(len);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      counters.accepted.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(io_, ServeClient(*this, a->listener, fd, peer), asio::detached);
    }
    AcceptNext(a);
  });
}

void Worker::RetryAccept(const std::shared_ptr<Acceptor>& a, std::chrono::nanoseconds after) {
  a->retry.expires_after(after);
  a->retry.async_wait([this, a](const boost::system::error_code& ec) {
    if (!ec) AcceptNext(a);
  });
}

void Worker::StopAccepting(const std::string& name) {
  auto it = acceptors_.find(name);
  if (it == acceptors_.end()) return;
  boost::system::error_code ignored;
  it->second->acceptor.close(ignored);
  it->second->retry.cancel();
  acceptors_.erase(it);
}

void Worker::StopAllAccepting() {
  while (!acceptors_.empty())
    StopAccepting(acceptors_.begin()->first);
}

void Worker::Register(std::shared_ptr<Tunnel> t) {
  Tunnel* raw = t.get();
  tunnels_[&raw->backend()].emplace(raw, std::move(t));
}

void Worker::Unregister(Tunnel* t) {
  auto it = tunnels_.find(&t->backend());
  if (it == tunnels_.end()) return;
  auto entry = it->second.find(t);
  if (entry == it->second.end()) return;
  if (retired_.empty()) asio::post(io_, [this] { retired_.clear(); });
  retired_.push_back(std::move(entry->second));
  it->second.erase(entry);
  if (it->second.empty()) tunnels_.erase(it);
}

void Worker::ShutdownSessions(const BackendState* backend, std::chrono::milliseconds jitter,
                              SessionEnd why) {
  for (auto& [to, set] : tunnels_) {
    if (backend != nullptr && to != backend) continue;
    for (auto& [raw, t] : set)
      CloseWithin(*t, jitter, why);
  }
}

void Worker::CloseWithin(Tunnel& tunnel, std::chrono::milliseconds jitter, SessionEnd why) {
  std::uniform_int_distribution<int64_t> delay(0, std::max<int64_t>(jitter.count(), 0));
  tunnel.CloseAt(Tunnel::Clock::now() + std::chrono::milliseconds(delay(rng_)), why);
}

void Worker::CloseAll() {
  std::vector<std::shared_ptr<Tunnel>> all;
  for (auto& [backend, set] : tunnels_) {
    for (auto& [raw, t] : set)
      all.push_back(t);
  }
  for (auto& t : all)
    t->Close(SessionEnd::kStopping);
}

void Worker::ReportConnectFailure(const std::shared_ptr<BackendState>& backend) {
  backend->connect_errors.fetch_add(1, std::memory_order_relaxed);
  proxy_.health().ReportConnectFailure(backend);
}

void Worker::ReportConnectSuccess(const std::shared_ptr<BackendState>& backend) {
  proxy_.health().ReportConnectSuccess(backend);
}

}  // namespace proxy
