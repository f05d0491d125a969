// Readers and writers of MQTT's data representations.
#include "mqtt/wire.h"

#include <cassert>

#include "mqtt/error.h"
#include "mqtt/utf8.h"

namespace mqtt {

void ByteReader::Fail(ReasonCode reason, const char* what) {
  if (what_ != nullptr) return;
  reason_ = reason;
  what_ = what;
  pos_ = data_.size();  // later reads see nothing and change nothing
}

absl::Status ByteReader::status() const {
  return ok() ? absl::OkStatus() : CodecError(reason_, what_);
}

std::string_view ByteReader::Bytes(size_t n) {
  if (remaining() < n) {
    Fail(ReasonCode::kMalformedPacket, "packet ends in the middle of a field");
    return {};
  }
  std::string_view v = data_.substr(pos_, n);
  pos_ += n;
  return v;
}

uint8_t ByteReader::U8() {
  std::string_view b = Bytes(1);
  return b.empty() ? 0 : static_cast<uint8_t>(b[0]);
}

uint16_t ByteReader::U16() {
  std::string_view b = Bytes(2);
  if (b.empty()) return 0;
  return static_cast<uint16_t>(static_cast<uint8_t>(b[0]) << 8 | static_cast<uint8_t>(b[1]));
}

uint32_t ByteReader::U32() {
  std::string_view b = Bytes(4);
  if (b.empty()) return 0;
  uint32_t v = 0;
  for (char c : b) v = v << 8 | static_cast<uint8_t>(c);
  return v;
}

uint32_t ByteReader::VarInt() {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    if (empty()) {
      Fail(ReasonCode::kMalformedPacket, "packet ends inside a variable byte integer");
      return 0;
    }
    uint8_t byte = static_cast<uint8_t>(data_[pos_++]);
    value |= static_cast<uint32_t>(byte & 0x7F) << (7 * i);
    if ((byte & 0x80) == 0) {
      if (i > 0 && byte == 0) {
        Fail(ReasonCode::kMalformedPacket, "variable byte integer not minimally encoded");
        return 0;
      }
      return value;
    }
  }
  Fail(ReasonCode::kMalformedPacket, "variable byte integer longer than four bytes");
  return 0;
}

std::string_view ByteReader::Binary() {
  uint16_t length = U16();
  return Bytes(length);
}

std::string_view ByteReader::Utf8() {
  std::string_view v = Binary();
  if (!IsValidUtf8(v)) {
    Fail(ReasonCode::kMalformedPacket, "string is not valid UTF-8 or contains U+0000");
    return {};
  }
  return v;
}

std::string_view ByteReader::Rest() { return Bytes(remaining()); }

void ByteWriter::U16(uint16_t v) {
  out_.push_back(static_cast<char>(v >> 8));
  out_.push_back(static_cast<char>(v & 0xFF));
}

void ByteWriter::U32(uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out_.push_back(static_cast<char>(v >> shift));
}

void ByteWriter::VarInt(uint32_t v) {
  do {
    uint8_t byte = v & 0x7F;
    v >>= 7;
    if (v > 0) byte |= 0x80;
    out_.push_back(static_cast<char>(byte));
  } while (v > 0);
}

void ByteWriter::Binary(std::string_view v) {
  assert(v.size() <= UINT16_MAX);  // the caller's contract: decoded strings always fit
  U16(static_cast<uint16_t>(v.size()));
  out_.append(v);
}

}  // namespace mqtt
