// Tests of net/proxy_protocol.h against the byte layout of the PROXY protocol v2 spec (§2.2).
#include "net/proxy_protocol.h"

#include <gtest/gtest.h>

namespace net {
namespace {

namespace ip = boost::asio::ip;

TEST(ProxyProtocolTest, EncodesIPv4AsTheSpecLaysItOut) {
  std::string h =
      EncodeProxyV2({ip::make_address("10.1.2.3"), 51000}, {ip::make_address("192.168.0.9"), 1883});
  const std::string expected(
      "\r\n\r\n\0\r\nQUIT\n"  // signature
      "\x21\x11\x00\x0C"      // v2 PROXY, TCP over IPv4, 12 bytes follow
      "\x0A\x01\x02\x03"      // source address
      "\xC0\xA8\x00\x09"      // destination address
      "\xC7\x38\x07\x5B",     // ports 51000 and 1883
      28);
  EXPECT_EQ(h, expected);
}

TEST(ProxyProtocolTest, RoundTripsIPv4AndIPv6) {
  for (auto [src, dst] : {std::pair{"127.0.0.1", "127.0.0.2"}, std::pair{"::1", "fe80::1"}}) {
    ip::tcp::endpoint s(ip::make_address(src), 4000), d(ip::make_address(dst), 1883);
    std::string h = EncodeProxyV2(s, d) + "CONNECT follows";
    auto parsed = ParseProxyV2(h);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->source, s);
    EXPECT_EQ((*parsed)->destination, d);
    EXPECT_EQ(h.substr((*parsed)->size), "CONNECT follows");
  }
}

TEST(ProxyProtocolTest, MappedIPv4IsSentAsIPv4) {
  std::string h = EncodeProxyV2({ip::make_address("::ffff:10.0.0.1"), 1},
                                {ip::make_address("::ffff:10.0.0.2"), 2});
  EXPECT_EQ(h[13], '\x11');
}

TEST(ProxyProtocolTest, IncompleteIsNotAnError) {
  std::string h = EncodeProxyV2({ip::make_address("1.2.3.4"), 1}, {ip::make_address("5.6.7.8"), 2});
  for (size_t n = 0; n < h.size(); ++n) {
    auto parsed = ParseProxyV2(std::string_view(h).substr(0, n));
    ASSERT_TRUE(parsed.ok()) << n;
    EXPECT_FALSE(parsed->has_value()) << n;
  }
}

TEST(ProxyProtocolTest, RejectsWhatIsNotAHeader) {
  EXPECT_FALSE(ParseProxyV2("\x10\x0c\x00\x04MQTT").ok());  // a CONNECT
  std::string v1("\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0C", 16);
  EXPECT_FALSE(ParseProxyV2(v1 + std::string(12, '\0')).ok());  // wrong version
}

TEST(ProxyProtocolTest, LocalCommandHasNoAddresses) {
  std::string local("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16);
  EXPECT_EQ(EncodeProxyV2Local(), local);
  auto parsed = ParseProxyV2(local);
  ASSERT_TRUE(parsed.ok());
  ASSERT_TRUE(parsed->has_value());
  EXPECT_TRUE((*parsed)->local);
  EXPECT_EQ((*parsed)->size, 16u);
}

TEST(ProxyProtocolTest, ProxyWithoutAFamilyLeavesTheConnectionsAddresses) {
  std::string unspec("\r\n\r\n\0\r\nQUIT\n\x21\x00\x00\x00", 16);
  auto parsed = ParseProxyV2(unspec);
  ASSERT_TRUE(parsed.ok());
  ASSERT_TRUE(parsed->has_value());
  EXPECT_TRUE((*parsed)->local);
}

TEST(ProxyProtocolTest, SkipsTlvs) {
  std::string h = EncodeProxyV2({ip::make_address("1.2.3.4"), 1}, {ip::make_address("5.6.7.8"), 2});
  h[15] = 12 + 4;                        // length covers a TLV
  h += std::string("\x04\x00\x01Z", 4);  // a NOOP TLV
  auto parsed = ParseProxyV2(h + "rest");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)->size, h.size());
}

}  // namespace
}  // namespace net
