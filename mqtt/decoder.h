// Decoding MQTT packets from a byte stream, incrementally and strictly.
//
// Decoding is two steps so that a caller can stop early and never copies what it does not need:
// ParseFrame() finds the next whole packet in a buffer (fixed header, Remaining Length, flags,
// maximum size) without looking inside it, and DecodePacket() turns one frame into a Packet. A
// packet split over many reads is simply not complete yet; many packets in one read are many
// frames. Every violation is a codec error carrying the spec's reason code (see error.h).
//
//   while (true) {
//     auto frame = ParseFrame(buffer, max_packet_bytes);
//     if (!frame.ok()) return Close(ReasonOf(frame.status()));
//     if (!frame->has_value()) break;  // wait for more bytes
//     auto packet = DecodePacket(**frame, version);
//     ...
//     buffer.remove_prefix((*frame)->size);
//   }
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "mqtt/packet.h"

namespace mqtt {

// One whole packet inside a buffer; valid as long as the buffer is.
struct Frame {
  uint8_t header = 0;     // packet type in the high nibble, flags in the low nibble
  std::string_view body;  // the Remaining Length bytes after the fixed header
  size_t size = 0;        // bytes of the whole packet, fixed header included

  PacketType type() const { return static_cast<PacketType>(header >> 4); }
  uint8_t flags() const { return header & 0x0F; }
};

// The largest packet MQTT can express: a 4-byte Remaining Length plus a 5-byte fixed header.
inline constexpr uint32_t kMaxPacketBytes = 268'435'455 + 5;

// Finds the packet at the start of `data`. Returns nullopt while the packet is incomplete, and an
// error for a reserved packet type, flags the packet type forbids (§2.1.3), a Remaining Length over
// four bytes, or a packet longer than `max_packet_bytes` (0x95, reported as soon as the length is
// known, before the body arrives).
[[nodiscard]] absl::StatusOr<std::optional<Frame>> ParseFrame(std::string_view data,
                                                              uint32_t max_packet_bytes);

// Decodes one frame for a session speaking `version` (ignored for CONNECT, which names its own).
[[nodiscard]] absl::StatusOr<Packet> DecodePacket(const Frame& frame, Version version);

// Decodes the first packet of a connection, which must be a CONNECT (§3.1, 0x82 otherwise).
// An unsupported protocol name or level is reported with 0x84 so that the server can answer
// with the matching CONNACK before closing.
[[nodiscard]] absl::StatusOr<Connect> DecodeConnect(const Frame& frame);

// Owns a buffer and yields packets from a stream fed in arbitrary pieces; for clients and tests.
// After an error the stream is poisoned and keeps returning that error. Feed() does not bound
// the buffer: a server must use ParseFrame on its own bounded buffer instead.
class StreamDecoder {
 public:
  explicit StreamDecoder(uint32_t max_packet_bytes = kMaxPacketBytes)
      : max_packet_bytes_(max_packet_bytes) {}

  void Feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next whole packet, nullopt when more bytes are needed.
  [[nodiscard]] absl::StatusOr<std::optional<Packet>> Next(Version version);
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  size_t consumed_ = 0;
  uint32_t max_packet_bytes_;
  absl::Status error_;
};

}  // namespace mqtt
