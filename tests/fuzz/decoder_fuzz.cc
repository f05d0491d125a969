// libFuzzer target for the MQTT codec (mqtt/decoder.h, mqtt/encoder.h).
//
// The input is a byte stream from a peer. It is decoded as a 5.0 and as a 3.1.1 session, whole and
// fed in small pieces, and its first packet as a connection's CONNECT. Beyond the sanitizers' own
// checks, the target traps when the codec disagrees with itself:
//   - a packet that decodes, re-encoded and decoded again, must come back equal (an encoder that
//     writes what its decoder rejects or reads differently is caught here);
//   - EncodePublishHeader plus the payload must be the bytes Encode writes for that PUBLISH, and
//     PublishPacketSize must predict their size;
//   - a stream fed in pieces must yield the same packets and the same error as fed whole;
//   - DecodeConnect must agree with DecodePacket on a CONNECT.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/error.h"

namespace {

using mqtt::Packet;
using mqtt::Version;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// Decodes `bytes`, which must be exactly one packet.
absl::StatusOr<Packet> DecodeWhole(std::string_view bytes, Version version) {
  absl::StatusOr<std::optional<mqtt::Frame>> frame = mqtt::ParseFrame(bytes, mqtt::kMaxPacketBytes);
  if (!frame.ok()) return frame.status();
  if (!frame->has_value() || (*frame)->size != bytes.size()) {
    return absl::InternalError("encoded bytes are not exactly one packet");
  }
  return mqtt::DecodePacket(**frame, version);
}

void CheckRoundTrip(const Packet& packet, Version version) {
  std::string bytes;
  mqtt::Encode(packet, version, bytes);
  absl::StatusOr<Packet> again = DecodeWhole(bytes, version);
  Check(again.ok() && *again == packet);

  if (const auto* p = std::get_if<mqtt::Publish>(&packet)) {
    mqtt::PublishHeader h{.topic = p->topic,
                          .qos = p->qos,
                          .retain = p->retain,
                          .dup = p->dup,
                          .packet_id = p->packet_id,
                          .properties = &p->properties};
    std::string header;
    size_t size = mqtt::EncodePublishHeader(h, p->payload.size(), version, header);
    Check(size == header.size() + p->payload.size());
    Check(size == mqtt::PublishPacketSize(h, p->payload.size(), version));
    Check(header + p->payload == bytes);
  }
}

// What a StreamDecoder yields: the packets, then nullopt or an error.
struct Outcome {
  std::vector<Packet> packets;
  absl::Status end;
};

// Pulls packets until the decoder needs more bytes or fails.
void Drain(mqtt::StreamDecoder& decoder, Version version, Outcome& outcome) {
  while (outcome.end.ok()) {
    absl::StatusOr<std::optional<Packet>> next = decoder.Next(version);
    if (!next.ok()) {
      outcome.end = next.status();
      return;
    }
    if (!next->has_value()) return;
    outcome.packets.push_back(std::move(**next));
  }
}

void FuzzStream(std::string_view data, Version version, size_t piece_size,
                uint32_t max_packet_bytes) {
  Outcome whole;
  mqtt::StreamDecoder all_at_once(max_packet_bytes);
  all_at_once.Feed(data);
  Drain(all_at_once, version, whole);

  Outcome pieces;
  mqtt::StreamDecoder piece_by_piece(max_packet_bytes);
  for (size_t i = 0; i < data.size() && pieces.end.ok(); i += piece_size) {
    piece_by_piece.Feed(data.substr(i, piece_size));
    Drain(piece_by_piece, version, pieces);
  }

  Check(whole.packets == pieces.packets);
  Check(whole.end.ok() == pieces.end.ok());
  Check(mqtt::ReasonOf(whole.end) == mqtt::ReasonOf(pieces.end));
  for (const Packet& p : whole.packets)
    CheckRoundTrip(p, version);
}

void FuzzConnect(std::string_view data) {
  absl::StatusOr<std::optional<mqtt::Frame>> frame = mqtt::ParseFrame(data, mqtt::kMaxPacketBytes);
  if (!frame.ok() || !frame->has_value()) return;
  absl::StatusOr<mqtt::Connect> connect = mqtt::DecodeConnect(**frame);
  absl::StatusOr<Packet> packet = mqtt::DecodePacket(**frame, Version::k5);
  if ((*frame)->type() == mqtt::PacketType::kConnect) {
    Check(connect.ok() == packet.ok());
    if (connect.ok()) Check(std::get<mqtt::Connect>(*packet) == *connect);
  } else {
    Check(!connect.ok() && mqtt::ReasonOf(connect.status()) == mqtt::ReasonCode::kProtocolError);
  }
  if (!connect.ok()) return;
  std::string bytes;
  mqtt::Encode(*connect, connect->version, bytes);
  absl::StatusOr<std::optional<mqtt::Frame>> again = mqtt::ParseFrame(bytes, mqtt::kMaxPacketBytes);
  Check(again.ok() && again->has_value() && (*again)->size == bytes.size());
  absl::StatusOr<mqtt::Connect> connect_again = mqtt::DecodeConnect(**again);
  Check(connect_again.ok() && *connect_again == *connect);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first byte picks how the stream is cut and how large a packet may be; it stays part of the
  // stream too, so that seeds which are plain packets decode as they are.
  size_t piece_size = size > 0 ? data[0] % 7 + 1 : 1;
  uint32_t max_packet_bytes = size > 0 && data[0] % 2 ? 64 : mqtt::kMaxPacketBytes;
  for (Version version : {Version::k5, Version::k311}) {
    FuzzStream(input, version, piece_size, mqtt::kMaxPacketBytes);
    FuzzStream(input, version, piece_size, max_packet_bytes);
  }
  FuzzConnect(input);
  return 0;
}
