// HttpChecker on Beast.
#include "health/http_checker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "health/probe.h"

namespace health {

namespace asio = boost::asio;
namespace http = boost::beast::http;

std::string HostHeader(const asio::ip::tcp::endpoint& target) {
  std::string host = target.address().to_string();
  if (target.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(target.port());
}

asio::awaitable<CheckResult> HttpChecker::Check(asio::ip::tcp::endpoint target,
                                                std::chrono::milliseconds timeout) {
  asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
  co_return co_await RunWithTimeout(
      [&]() -> asio::awaitable<CheckResult> {
        if (std::optional<CheckResult> failed = co_await ConnectTo(socket, target)) {
          co_return *failed;
        }
        http::request<http::empty_body> request(http::verb::get, path_, 11);
        request.set(http::field::host, HostHeader(target));
        request.set(http::field::user_agent, "switchboard-health");
        request.set(http::field::connection, "close");
        auto [wec, written] =
            co_await http::async_write(socket, request, asio::as_tuple(asio::use_awaitable));
        if (wec) co_return CheckResult{.error = "write: " + wec.message()};
        // The status is the verdict: the header only is read, whatever the body (a status page
        // may be large, or streamed).
        boost::beast::flat_buffer buffer;
        http::response_parser<http::empty_body> parser;
        auto [rec, read] = co_await http::async_read_header(socket, buffer, parser,
                                                            asio::as_tuple(asio::use_awaitable));
        if (rec) co_return CheckResult{.error = "read: " + rec.message()};
        unsigned status = parser.get().result_int();
        if (status < 200 || status >= 300) {
          co_return CheckResult{.error = "HTTP status " + std::to_string(status)};
        }
        co_return CheckResult{.ok = true};
      },
      timeout);
}

}  // namespace health
