// Names and type tags of the packet structs.
#include "mqtt/packet.h"

namespace mqtt {

std::string_view PacketTypeName(PacketType type) {
  static constexpr std::string_view kNames[] = {
      "reserved", "CONNECT", "CONNACK",  "PUBLISH",     "PUBACK",   "PUBREC",
      "PUBREL",   "PUBCOMP", "SUBSCRIBE", "SUBACK",     "UNSUBSCRIBE", "UNSUBACK",
      "PINGREQ",  "PINGRESP", "DISCONNECT", "AUTH"};
  return kNames[static_cast<uint8_t>(type) & 0x0F];
}

PacketType TypeOf(const Packet& packet) {
  // The variant's alternatives are declared in packet-type order, CONNECT first.
  return static_cast<PacketType>(packet.index() + 1);
}

}  // namespace mqtt
