// Reads the broker's first reply to an MQTT 5 CONNECT as the tunnel relays it, for the CONNACK's
// Server Keep Alive (§3.2.2.3.14), which the client then follows instead of its own: the
// tunnel's idle timeout must follow it too.
//
// The reply comes a read at a time and may be cut anywhere: the bytes of an unfinished packet are
// kept until the rest arrives (up to kMaxHeld; a longer reply is not waited for). Whole AUTH
// packets (enhanced authentication, §4.12) come before the CONNACK and are skipped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace proxy {

class ConnackReader {
 public:
  static constexpr uint32_t kMaxHeld = 64 * 1024;

  // Feeds the next read. Returns the CONNACK's Server Keep Alive in seconds, if it has one, once
  // the CONNACK is whole; `done` then says that nothing more needs to be fed (also set when the
  // reply is not a CONNACK or is malformed: the client's keep alive stays in force).
  std::optional<uint16_t> Feed(std::string_view read, bool& done);

 private:
  std::string held_;  // the start of a packet cut by the end of a read
};

}  // namespace proxy
