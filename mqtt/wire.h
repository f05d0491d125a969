// The data representations of MQTT (MQTT 5.0 §1.5): big-endian integers, Variable Byte Integers,
// length-prefixed UTF-8 strings and binary data, read from and appended to byte strings.
//
// ByteReader fails sticky: the first error is kept with its reason code and every later read
// returns an empty value, so a decoder reads a whole packet and checks ok() once at the end instead
// of after every field. Bytes are held in std::string / std::string_view throughout the codec.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "mqtt/reason_code.h"

namespace mqtt {

class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}

  uint8_t U8();
  uint16_t U16();
  uint32_t U32();
  // A Variable Byte Integer (§1.5.5): at most four bytes, minimally encoded.
  uint32_t VarInt();
  // Two-byte length, then that many bytes (§1.5.6).
  std::string_view Binary();
  // Binary() that must also be valid MQTT UTF-8 (§1.5.4).
  std::string_view Utf8();
  // The next n bytes.
  std::string_view Bytes(size_t n);
  // Everything not read yet.
  std::string_view Rest();

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return remaining() == 0; }

  // Records a failure unless one is recorded already. `what` must be a string literal.
  void Fail(ReasonCode reason, const char* what);
  // Takes over the failure, if any, of a reader over a part of this reader's data.
  void Adopt(const ByteReader& part) {
    if (!part.ok()) Fail(part.reason_, part.what_);
  }
  bool ok() const { return what_ == nullptr; }
  // OK, or the first failure as a codec error.
  absl::Status status() const;

 private:
  std::string_view data_;
  size_t pos_ = 0;
  ReasonCode reason_ = ReasonCode::kSuccess;
  const char* what_ = nullptr;
};

// Appends MQTT data representations to a byte string.
class ByteWriter {
 public:
  explicit ByteWriter(std::string& out) : out_(out) {}

  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v);
  void U32(uint32_t v);
  void VarInt(uint32_t v);
  void Binary(std::string_view v);  // also UTF-8 strings: the caller has validated them
  void Raw(std::string_view v) { out_.append(v); }

 private:
  std::string& out_;
};

// Bytes a Variable Byte Integer takes (1 to 4).
constexpr size_t VarIntSize(uint32_t v) {
  return v < 128 ? 1 : v < 16'384 ? 2 : v < 2'097'152 ? 3 : 4;
}

}  // namespace mqtt
