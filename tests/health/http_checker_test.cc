// Tests of health/http_checker.h: the Host header, and verdicts on answers from a socket of the
// test's own.
#include "health/http_checker.h"

#include <gtest/gtest.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "tests/health/check_against.h"

namespace health {
namespace {

using boost::asio::ip::make_address;
using boost::asio::ip::tcp;

TEST(HttpCheckerTest, HostHeaderHasThePortAndBracketsIpv6) {
  EXPECT_EQ(HostHeader(tcp::endpoint(make_address("127.0.0.1"), 8080)), "127.0.0.1:8080");
  EXPECT_EQ(HostHeader(tcp::endpoint(make_address("::1"), 9000)), "[::1]:9000");
}

// Checks a server on loopback that answers the request with `answer`.
CheckResult CheckAgainst(std::string answer) {
  HttpChecker checker("/healthz");
  return CheckAgainst(checker, [&](tcp::socket& s) -> boost::asio::awaitable<void> {
    std::string request;
    co_await boost::asio::async_read_until(s, boost::asio::dynamic_buffer(request), "\r\n\r\n",
                                           boost::asio::use_awaitable);
    boost::system::error_code ignored;
    co_await boost::asio::async_write(
        s, boost::asio::buffer(answer),
        boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
  });
}

TEST(HttpCheckerTest, A2xxIsHealthyWhateverItsBody) {
  EXPECT_TRUE(CheckAgainst("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").ok);
  // A status page over the 64 KiB the body was once read into.
  std::string big(200 * 1024, 'x');
  CheckResult r = CheckAgainst("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big.size()) +
                               "\r\n\r\n" + big);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(CheckAgainst("HTTP/1.0 204 No Content\r\n\r\n").ok);
}

TEST(HttpCheckerTest, AnythingElseIsNot) {
  CheckResult r = CheckAgainst("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "HTTP status 503");
  EXPECT_FALSE(CheckAgainst("SSH-2.0-OpenSSH\r\n\r\n").ok);
  EXPECT_FALSE(CheckAgainst("").ok);
}

}  // namespace
}  // namespace health
