// PROXY protocol v2 encoding and parsing.
#include "net/proxy_protocol.h"

#include <cstring>

namespace net {
namespace {

namespace ip = boost::asio::ip;

constexpr std::string_view kSignature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr size_t kFixedSize = 16;  // signature, version/command, family, length

ip::address Plain(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

void AppendPort(std::string& out, uint16_t port) {
  out.push_back(static_cast<char>(port >> 8));
  out.push_back(static_cast<char>(port & 0xFF));
}

uint16_t ReadU16(std::string_view d, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(d[at]) << 8 | static_cast<uint8_t>(d[at + 1]));
}

}  // namespace

std::string EncodeProxyV2(const ip::tcp::endpoint& source, const ip::tcp::endpoint& destination) {
  ip::address src = Plain(source.address());
  ip::address dst = Plain(destination.address());
  std::string out(kSignature);
  out.push_back('\x21');  // version 2, PROXY
  if (src.is_v4() && dst.is_v4()) {
    out.push_back('\x11');
    out.append({'\0', '\x0C'});
    auto s = src.to_v4().to_bytes(), d = dst.to_v4().to_bytes();
    out.append(reinterpret_cast<const char*>(s.data()), s.size());
    out.append(reinterpret_cast<const char*>(d.data()), d.size());
  } else {
    out.push_back('\x21');
    out.append({'\0', '\x24'});
    auto s =
        (src.is_v4() ? ip::make_address_v6(ip::v4_mapped, src.to_v4()) : src.to_v6()).to_bytes();
    auto d =
        (dst.is_v4() ? ip::make_address_v6(ip::v4_mapped, dst.to_v4()) : dst.to_v6()).to_bytes();
    out.append(reinterpret_cast<const char*>(s.data()), s.size());
    out.append(reinterpret_cast<const char*>(d.data()), d.size());
  }
  AppendPort(out, source.port());
  AppendPort(out, destination.port());
  return out;
}

std::string EncodeProxyV2Local() {
  std::string out(kSignature);
  out.append({'\x20', '\0', '\0', '\0'});  // version 2, LOCAL; UNSPEC; no address block
  return out;
}

absl::StatusOr<std::optional<ProxyHeader>> ParseProxyV2(std::string_view data) {
  size_t known = std::min(data.size(), kSignature.size());
  if (data.substr(0, known) != kSignature.substr(0, known)) {
    return absl::InvalidArgumentError("not a PROXY protocol v2 header");
  }
  if (data.size() < kFixedSize) return std::nullopt;
  auto version_command = static_cast<uint8_t>(data[12]);
  auto family = static_cast<uint8_t>(data[13]);
  uint16_t length = ReadU16(data, 14);
  if (version_command >> 4 != 2 || (version_command & 0x0F) > 1) {
    return absl::InvalidArgumentError("PROXY header: unsupported version or command");
  }
  if (data.size() < kFixedSize + length) return std::nullopt;
  ProxyHeader h;
  h.size = kFixedSize + length;
  h.local = (version_command & 0x0F) == 0;
  if (h.local) return h;
  std::string_view body = data.substr(kFixedSize, length);
  if (family == 0x11) {
    if (length < 12) return absl::InvalidArgumentError("PROXY header: short IPv4 addresses");
    ip::address_v4::bytes_type s, d;
    std::memcpy(s.data(), body.data(), 4);
    std::memcpy(d.data(), body.data() + 4, 4);
    h.source = {ip::address_v4(s), ReadU16(body, 8)};
    h.destination = {ip::address_v4(d), ReadU16(body, 10)};
  } else if (family == 0x21) {
    if (length < 36) return absl::InvalidArgumentError("PROXY header: short IPv6 addresses");
    ip::address_v6::bytes_type s, d;
    std::memcpy(s.data(), body.data(), 16);
    std::memcpy(d.data(), body.data() + 16, 16);
    h.source = {ip::address_v6(s), ReadU16(body, 32)};
    h.destination = {ip::address_v6(d), ReadU16(body, 34)};
  } else if (family >> 4 == 0) {  // AF_UNSPEC, whatever the transport
    h.local = true;  // "the receiver ... must use the real connection endpoints" (spec, 2.2)
  } else {
    return absl::InvalidArgumentError("PROXY header: unsupported address family");
  }
  return h;
}

}  // namespace net
