// RawSocket: readiness flags and coroutine waits on the worker's Poller.
#include "proxy/raw_socket.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace proxy {

namespace asio = boost::asio;

RawSocket::RawSocket(Poller& poller, int fd)
    : fd_(fd), registration_error_(poller.Add(fd, this)), executor_(poller.executor()) {}

RawSocket::~RawSocket() {
  Close();
}

void RawSocket::Close() {
  if (fd_ < 0) return;
  ::close(fd_);  // also leaves the epoll set
  fd_ = -1;
  Cancel();
}

void RawSocket::OnEvents(uint32_t events) {
  if (fd_ < 0) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP)) peer_closed = true;
  if (events & EPOLLERR) failed = true;
  if (events & EPOLLPRI) urgent = readable = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable = true;
  if (readable && read_waiter_) Complete(read_waiter_, {});
  if (writable && write_waiter_) Complete(write_waiter_, {});
  if (sink_ != nullptr) sink_->OnEvents(*this, events);
}

void RawSocket::Complete(std::optional<Waiter>& waiter, boost::system::error_code ec) {
  Waiter w = std::move(*waiter);
  waiter.reset();
  // Resume the coroutine from the io_context, not from inside the poller's batch.
  asio::post(executor_, [w = std::move(w), ec]() mutable { std::move(w)(ec); });
}

void RawSocket::Cancel() {
  if (read_waiter_) Complete(read_waiter_, asio::error::operation_aborted);
  if (write_waiter_) Complete(write_waiter_, asio::error::operation_aborted);
}

asio::awaitable<boost::system::error_code> RawSocket::Readable() {
  return Wait(false);
}
asio::awaitable<boost::system::error_code> RawSocket::Writable() {
  return Wait(true);
}

asio::awaitable<boost::system::error_code> RawSocket::Wait(bool for_write) {
  if (fd_ < 0) co_return asio::error::bad_descriptor;
  if (for_write ? writable : readable) co_return boost::system::error_code();
  auto token = asio::as_tuple(asio::use_awaitable);
  auto [ec] = co_await asio::async_initiate<decltype(token), void(boost::system::error_code)>(
      [this, for_write](auto handler) {
        (for_write ? write_waiter_ : read_waiter_).emplace(std::move(handler));
      },
      token);
  co_return ec;
}

}  // namespace proxy
