#include "proxy/connack_reader.h"

#include <variant>

#include "absl/status/statusor.h"
#include "mqtt/decoder.h"

namespace proxy {

std::optional<uint16_t> ConnackReader::Feed(std::string_view read, bool& done) {
  std::string_view reply = read;
  if (!held_.empty()) {
    held_.append(read);
    reply = held_;
  }
  done = true;
  while (true) {
    absl::StatusOr<std::optional<mqtt::Frame>> frame = mqtt::ParseFrame(reply, kMaxHeld);
    if (!frame.ok()) return std::nullopt;
    if (!frame->has_value()) {  // cut short, or read up to the end of whole AUTH packets
      done = false;
      if (held_.empty()) {
        held_ = reply;
      } else {
        held_.erase(0, reply.data() - held_.data());  // the AUTH packets read whole
      }
      return std::nullopt;
    }
    if ((**frame).type() != mqtt::PacketType::kAuth) {
      absl::StatusOr<mqtt::Packet> packet = mqtt::DecodePacket(**frame, mqtt::Version::k5);
      const auto* connack = packet.ok() ? std::get_if<mqtt::Connack>(&*packet) : nullptr;
      if (connack == nullptr) return std::nullopt;
      return connack->properties.server_keep_alive;
    }
    reply.remove_prefix((**frame).size);
  }
}

}  // namespace proxy
