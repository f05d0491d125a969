// Tests of health/tcp_checker.h: a listening port is healthy, a closed one is not.
#include "health/tcp_checker.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>

#include "tests/health/check_against.h"

namespace health {
namespace {

using boost::asio::ip::tcp;

TEST(TcpCheckerTest, AnAcceptedConnectionIsHealthy) {
  TcpChecker checker;
  CheckResult r = CheckAgainst(checker, [](tcp::socket&) -> boost::asio::awaitable<void> {
    co_return;  // accepted, then closed without a word
  });
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_GT(r.latency.count(), 0);
}

TEST(TcpCheckerTest, ARefusedConnectionIsNot) {
  boost::asio::io_context io;
  // A port bound but not listening: connecting to it is refused.
  tcp::socket holder(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  std::optional<CheckResult> result;
  TcpChecker checker;
  boost::asio::co_spawn(io, checker.Check(holder.local_endpoint(), std::chrono::seconds(5)),
                        [&](std::exception_ptr, CheckResult r) { result = std::move(r); });
  io.run();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(result->ok);
  EXPECT_FALSE(result->inconclusive);  // the backend's fault, not the proxy's
  EXPECT_EQ(result->error, "connect: Connection refused");
}

}  // namespace
}  // namespace health
