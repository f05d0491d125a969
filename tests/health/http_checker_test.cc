// Tests of health/http_checker.h that need no server: the Host header.
#include "health/http_checker.h"

#include <gtest/gtest.h>

namespace health {
namespace {

using boost::asio::ip::make_address;
using boost::asio::ip::tcp;

TEST(HttpCheckerTest, HostHeaderHasThePortAndBracketsIpv6) {
  EXPECT_EQ(HostHeader(tcp::endpoint(make_address("127.0.0.1"), 8080)), "127.0.0.1:8080");
  EXPECT_EQ(HostHeader(tcp::endpoint(make_address("::1"), 9000)), "[::1]:9000");
}

}  // namespace
}  // namespace health
