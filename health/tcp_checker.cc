// TcpChecker.
#include "health/tcp_checker.h"

#include <boost/asio/this_coro.hpp>

#include "health/probe.h"

namespace health {

namespace asio = boost::asio;

asio::awaitable<CheckResult> TcpChecker::Check(asio::ip::tcp::endpoint target,
                                               std::chrono::milliseconds timeout) {
  asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
  co_return co_await RunWithTimeout(
      [&]() -> asio::awaitable<CheckResult> {
        std::optional<CheckResult> failed = co_await ConnectTo(socket, target);
        co_return failed ? *failed : CheckResult{.ok = true};
      },
      timeout);
}

}  // namespace health
