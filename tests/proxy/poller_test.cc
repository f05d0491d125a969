// Tests of proxy/poller.h on a real socket pair and io_context: events reach their handler, in a
// batch and after the poller went back to waiting, with and without the yield before sleeping.
#include "proxy/poller.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace proxy {
namespace {

struct Counting : Poller::Handler {
  void OnEvents(uint32_t events) override {
    if (events & EPOLLIN) ++readable;
    if (events & EPOLLOUT) ++writable;
    if (events & EPOLLRDHUP) ++peer_closed;
  }
  int readable = 0;
  int writable = 0;
  int peer_closed = 0;
};

class PollerTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
  }
  void TearDown() override {
    ::close(fds_[0]);
    if (fds_[1] >= 0) ::close(fds_[1]);
  }
  // Runs the io_context until `done` holds or two seconds pass; returns whether it held.
  template <typename Pred>
  bool RunUntil(Pred done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }
  void Send(const char* bytes) { ASSERT_GT(::write(fds_[1], bytes, strlen(bytes)), 0); }

  boost::asio::io_context io_;
  int fds_[2] = {-1, -1};
};

TEST_P(PollerTest, DeliversEdgesAfterGoingBackToWait) {
  Poller poller(io_, GetParam());
  Counting handler;
  poller.Add(fds_[0], &handler);
  // A fresh socket is writable at once: the first edge.
  ASSERT_TRUE(RunUntil([&] { return handler.writable >= 1; }));
  EXPECT_EQ(handler.readable, 0);
  // Idle now: the poller has gone back to waiting. Each new write is a new edge.
  for (int i = 1; i <= 3; ++i) {
    Send("x");
    ASSERT_TRUE(RunUntil([&] { return handler.readable >= i; })) << "write " << i;
  }
  ::close(fds_[1]);
  fds_[1] = -1;
  EXPECT_TRUE(RunUntil([&] { return handler.peer_closed >= 1; }));
}

TEST_P(PollerTest, RemovedDescriptorGetsNoEvents) {
  Poller poller(io_, GetParam());
  Counting handler;
  poller.Add(fds_[0], &handler);
  ASSERT_TRUE(RunUntil([&] { return handler.writable >= 1; }));
  poller.Remove(fds_[0]);
  Send("x");
  // Another descriptor's event shows the poller has run past the write.
  int other[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, other), 0);
  Counting witness;
  poller.Add(other[0], &witness);
  ASSERT_TRUE(RunUntil([&] { return witness.writable >= 1; }));
  EXPECT_EQ(handler.readable, 0);
  ::close(other[0]);
  ::close(other[1]);
}

// A descriptor the poller cannot watch never gets an event: Add says so, for the caller to drop
// it (ENOSPC past fs.epoll.max_user_watches, ENOMEM; here the errors a test can provoke).
TEST_P(PollerTest, AddSaysWhyItFailed) {
  Poller poller(io_, GetParam());
  Counting handler;
  EXPECT_EQ(poller.Add(fds_[0], &handler), 0);
  EXPECT_EQ(poller.Add(fds_[0], &handler), EEXIST);
  EXPECT_EQ(poller.Add(-1, &handler), EBADF);
}

INSTANTIATE_TEST_SUITE_P(YieldBeforeSleep, PollerTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Yield" : "NoYield"; });

}  // namespace
}  // namespace proxy
