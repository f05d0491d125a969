// RunWithTimeout: the probe raced against a timer (Asio's awaitable operators); the loser is
// cancelled.
#include "health/probe.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/local_shortage.h"

namespace health {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

asio::awaitable<CheckResult> RunWithTimeout(std::function<asio::awaitable<CheckResult>()> probe,
                                            std::chrono::milliseconds timeout) {
  auto start = std::chrono::steady_clock::now();
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto winner = co_await (probe() || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  CheckResult result;
  if (winner.index() == 0) {
    result = std::get<0>(std::move(winner));
  } else {
    result.error = "timed out";
  }
  result.latency = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  co_return result;
}

asio::awaitable<std::optional<CheckResult>> ConnectTo(asio::ip::tcp::socket& socket,
                                                      const asio::ip::tcp::endpoint& target) {
  auto [ec] = co_await socket.async_connect(target, asio::as_tuple(asio::use_awaitable));
  if (!ec) co_return std::nullopt;
  bool local =
      ec.category() == boost::system::system_category() && net::IsLocalShortage(ec.value());
  co_return CheckResult{.error = "connect: " + ec.message(), .inconclusive = local};
}

}  // namespace health
