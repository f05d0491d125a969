// Codec errors carry their reason code as a one-byte status payload.
#include "mqtt/error.h"


#include "absl/strings/cord.h"

namespace mqtt {
namespace {
constexpr std::string_view kReasonPayloadUrl = "type.switchboard.dev/mqtt.ReasonCode";
}  // namespace

absl::Status CodecError(ReasonCode reason, std::string_view message) {
  // Debian's Abseil has its own string_view type, not std::string_view.
  absl::Status status(absl::StatusCode::kInvalidArgument,
                      absl::string_view(message.data(), message.size()));
  status.SetPayload(absl::string_view(kReasonPayloadUrl.data(), kReasonPayloadUrl.size()),
                    absl::Cord(std::string(1, static_cast<char>(reason))));
  return status;
}

ReasonCode ReasonOf(const absl::Status& status) {
  auto payload =
      status.GetPayload(absl::string_view(kReasonPayloadUrl.data(), kReasonPayloadUrl.size()));
  if (!payload.has_value() || payload->size() != 1) return ReasonCode::kUnspecifiedError;
  return static_cast<ReasonCode>(static_cast<uint8_t>((*payload)[0]));
}

}  // namespace mqtt
