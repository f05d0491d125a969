// Reading and writing the property section of a 5.0 packet (§2.2.2): a Variable Byte Integer
// length, then identifier/value pairs. For the codec, and for encodings built on it (the broker's
// session records).
#pragma once

#include <cstddef>

#include "mqtt/packet.h"
#include "mqtt/wire.h"

namespace mqtt {

// Where a property section sits: in a packet of some type, or in the will of a CONNECT.
struct PropertyContext {
  PacketType packet;
  bool will = false;
};

// Reads a property section into `out`, failing `r` on an unknown identifier, a property the context
// does not allow, a duplicate, or a value out of range.
void ReadProperties(ByteReader& r, PropertyContext context, Properties& out);

// Bytes the properties take, not counting the length prefix.
size_t PropertiesBodySize(const Properties& p);

// Writes the properties without their length prefix.
void WritePropertiesBody(ByteWriter& w, const Properties& p);

// The size and encoding of one integer property, for properties written outside a Properties
// value (the per-recipient part of a PUBLISH).
size_t PropertySize(PropertyId id, uint32_t value);
void WriteProperty(ByteWriter& w, PropertyId id, uint32_t value);
size_t UserPropertySize(std::string_view key, std::string_view value);
void WriteUserProperty(ByteWriter& w, std::string_view key, std::string_view value);

}  // namespace mqtt
