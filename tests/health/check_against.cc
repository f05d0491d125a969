#include "tests/health/check_against.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

namespace health {

using boost::asio::ip::tcp;

CheckResult CheckAgainst(Checker& checker,
                         std::function<boost::asio::awaitable<void>(tcp::socket&)> serve,
                         std::chrono::milliseconds timeout) {
  boost::asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket* serving = nullptr;  // while `serve` runs
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        tcp::socket s = co_await acceptor.async_accept(boost::asio::use_awaitable);
        serving = &s;
        co_await serve(s);
        serving = nullptr;
      },
      boost::asio::detached);
  std::optional<CheckResult> result;
  boost::asio::co_spawn(io, checker.Check(acceptor.local_endpoint(), timeout),
                        [&](std::exception_ptr, CheckResult r) {
                          result = std::move(r);
                          // The server ends with the check: one that never got a connection,
                          // and one still waiting on its socket.
                          acceptor.close();
                          if (serving != nullptr) serving->close();
                        });
  io.run();
  EXPECT_TRUE(result.has_value());
  return result.value_or(CheckResult{});
}

}  // namespace health
