// Poller: an epoll set nested in Asio's.
#include "proxy/poller.h"

#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

namespace proxy {

namespace asio = boost::asio;

namespace {
constexpr int kBatch = 256;
}

Poller::Poller(asio::io_context& io, bool yield_before_sleep)
    : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      yield_before_sleep_(yield_before_sleep),
      descriptor_(io) {
  if (epoll_fd_ < 0) {
    spdlog::critical("epoll_create1: {}", std::strerror(errno));
    std::abort();  // no poller, no proxy: nothing sensible to fall back to
  }
  descriptor_.assign(epoll_fd_);
  Wait();
}

Poller::~Poller() {
  boost::system::error_code ignored;
  descriptor_.close(ignored);  // closes epoll_fd_
}

int Poller::Add(int fd, Handler* handler) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = handler;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  int error = errno;
  spdlog::warn("epoll_ctl add {}: {}", fd, std::strerror(error));
  return error;
}

void Poller::Remove(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Poller::Wait() {
  descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                         [this](const boost::system::error_code& ec) {
                           if (!ec) Poll();
                         });
}

void Poller::Poll() {
  epoll_event events[kBatch];
  int n = epoll_wait(epoll_fd_, events, kBatch, 0);
  if (n == 0 && yield_before_sleep_) {
    sched_yield();
    n = epoll_wait(epoll_fd_, events, kBatch, 0);
  }
  for (int i = 0; i < n; ++i)
    static_cast<Handler*>(events[i].data.ptr)->OnEvents(events[i].events);
  if (n > 0) {
    // Under load more will be ready soon: poll again after what else the thread has to do,
    // rather than re-arm the wait (an epoll_ctl) for each batch. An empty poll re-arms it.
    asio::post(descriptor_.get_executor(), [this] { Poll(); });
  } else {
    Wait();
  }
}

}  // namespace proxy
