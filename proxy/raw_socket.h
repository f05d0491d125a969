// A TCP socket of the proxy's data path: a non-blocking descriptor registered once, at creation,
// in the worker's edge-triggered Poller, from accept (or connect) to close.
//
// Asio sockets register with Asio's reactor, and re-arm with an epoll_ctl at every wait; a proxy
// pays that on each message and again at each connection's setup. A RawSocket costs one
// epoll_ctl in its life (closing the descriptor removes it from the set). Readiness is kept as
// flags, set by events and cleared by the caller when a read or write comes up short.
//
// Events go to the socket's sink: during a connection's setup, the coroutine waiting on
// Readable() or Writable(); once the tunnel starts, the tunnel.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <optional>

#include "proxy/poller.h"

namespace proxy {

class RawSocket : public Poller::Handler {
 public:
  class Sink {
   public:
    virtual void OnEvents(RawSocket& socket, uint32_t epoll_events) = 0;

   protected:
    ~Sink() = default;
  };

  // Takes ownership of `fd`, which must be non-blocking, and registers it in `poller`.
  RawSocket(Poller& poller, int fd);
  ~RawSocket();
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  int fd() const { return fd_; }
  // The errno of a failed registration in the poller (0: registered). Such a socket never gets
  // an event: the caller drops it, as a shortage of this proxy's, not the peer's fault.
  int registration_error() const { return registration_error_; }
  void Close();

  bool readable = true;  // unknown at first: try
  bool writable = true;
  // The peer closed its side (EPOLLRDHUP): the end of stream is still to be read, even after a
  // short read, since it came with the last data and no further edge will announce it.
  bool peer_closed = false;
  // EPOLLERR came: the socket has a pending error (for a connect under way: it failed).
  bool failed = false;
  // EPOLLPRI came: urgent data (MSG_OOB) is pending. A read stops short at its mark with more
  // data behind it, so a short read no longer says the socket is drained, until one that finds
  // nothing (EAGAIN).
  bool urgent = false;

  void set_sink(Sink* sink) { sink_ = sink; }

  // Completes when the socket may be read (or written), or with operation_aborted on Cancel().
  boost::asio::awaitable<boost::system::error_code> Readable();
  boost::asio::awaitable<boost::system::error_code> Writable();
  void Cancel();

  void OnEvents(uint32_t epoll_events) override;

 private:
  using Waiter = boost::asio::any_completion_handler<void(boost::system::error_code)>;
  boost::asio::awaitable<boost::system::error_code> Wait(bool for_write);
  void Complete(std::optional<Waiter>& waiter, boost::system::error_code ec);

  int fd_;
  int registration_error_;
  boost::asio::any_io_executor executor_;
  Sink* sink_ = nullptr;
  std::optional<Waiter> read_waiter_;
  std::optional<Waiter> write_waiter_;
};

}  // namespace proxy
