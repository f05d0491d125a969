// One I/O thread of the proxy and everything that lives on it: its acceptors (one per listener,
// all sharing the address through SO_REUSEPORT), its handle on each pool (a strategy instance of
// its own), the tunnels it carries, and the read buffer they share.
//
// Nothing here is touched by another thread. The control thread reaches a worker only by posting
// to its io_context: new pools after a reload, listeners to open or close, backends whose
// sessions must be shut down.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "proxy/listener_state.h"
#include "proxy/poller.h"
#include "proxy/pool.h"
#include "proxy/session_end.h"

namespace proxy {

class Proxy;
class Tunnel;

class Worker {
 public:
  Worker(Proxy& proxy, size_t index, boost::asio::io_context& io, bool yield_before_sleep);
  ~Worker();

  size_t index() const { return index_; }
  boost::asio::io_context& io() { return io_; }
  // 64 KiB shared by this thread's tunnels, valid within one handler.
  std::span<char> read_buffer() { return read_buffer_; }

  // The calls below run on this worker's thread.
  void SetPools(const std::map<std::string, std::shared_ptr<const Pool>>& pools);
  PoolPicker* picker(const std::string& pool);
  // Starts accepting on `acceptor` (opened and bound by the control thread) for `listener`.
  void Accept(std::shared_ptr<const ListenerState> listener,
              boost::asio::ip::tcp::acceptor acceptor);
  // A reload changed the listener's settings but not its address: new connections use these.
  void UpdateListener(std::shared_ptr<const ListenerState> listener);
  // Stops accepting for the listener called `name`.
  void StopAccepting(const std::string& name);
  void StopAllAccepting();

  Poller& poller() { return poller_; }
  // The worker owns its tunnels from Start to Close; a closed one is released after the
  // handler that closed it (events for it may still be in the poller's batch).
  void Register(std::shared_ptr<Tunnel> t);
  void Unregister(Tunnel* t);
  // Closes the tunnels to `backend` (every tunnel when null), each at a random moment within
  // `jitter`, for `why`.
  void ShutdownSessions(const BackendState* backend, std::chrono::milliseconds jitter,
                        SessionEnd why);
  // Closes `tunnel` at a random moment within `jitter`, so that the clients of many do not all
  // reconnect in the same millisecond.
  void CloseWithin(Tunnel& tunnel, std::chrono::milliseconds jitter, SessionEnd why);
  // Closes every tunnel now (shutdown).
  void CloseAll();

  // From any coroutine or tunnel of this thread: a failed connect or an immediate reset.
  void ReportConnectFailure(const std::shared_ptr<BackendState>& backend);
  void ReportConnectSuccess(const std::shared_ptr<BackendState>& backend);

 private:
  struct Acceptor;
  void AcceptNext(const std::shared_ptr<Acceptor>& a);
  // Accepts again `after` this long (a failed accept, or max_connection_rate).
  void RetryAccept(const std::shared_ptr<Acceptor>& a, std::chrono::nanoseconds after);

  Proxy& proxy_;
  size_t index_;
  boost::asio::io_context& io_;
  std::vector<char> read_buffer_;
  std::map<std::string, PoolPicker> pickers_;
  std::map<std::string, std::shared_ptr<Acceptor>> acceptors_;
  Poller poller_;
  absl::flat_hash_map<const BackendState*, absl::flat_hash_map<Tunnel*, std::shared_ptr<Tunnel>>>
      tunnels_;
  std::vector<std::shared_ptr<Tunnel>> retired_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace proxy
