// The forward format's encoding.
#include "backend/forward.h"

#include <algorithm>

namespace backend {
namespace {
constexpr std::string_view kQos = "sb.link.qos";
constexpr std::string_view kFlags = "sb.link.flags";
constexpr std::string_view kShared = "sb.link.shared";
}  // namespace

std::vector<std::pair<std::string, std::string>> EncodeForward(const ForwardSpec& spec,
                                                               mqtt::QoS qos, bool retain) {
  std::string flags;
  if (spec.normal) flags += 'n';
  if (retain) flags += 'r';
  if (spec.store_retained) flags += 's';
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back(kQos, std::string(1, static_cast<char>('0' + static_cast<int>(qos))));
  out.emplace_back(kFlags, flags);
  for (const auto& [group, filter] : spec.shared)
    out.emplace_back(kShared, group + "\n" + filter);
  return out;
}

std::optional<ReceivedForward> DecodeForward(mqtt::Properties& properties) {
  ReceivedForward f;
  bool has_qos = false, has_flags = false, ok = true;
  auto& props = properties.user_properties;
  for (const auto& [key, value] : props) {
    if (key == kQos) {
      has_qos = value.size() == 1 && value[0] >= '0' && value[0] <= '2';
      if (has_qos) f.qos = static_cast<mqtt::QoS>(value[0] - '0');
    } else if (key == kFlags) {
      has_flags = true;
      f.spec.normal = value.find('n') != std::string::npos;
      f.retain = value.find('r') != std::string::npos;
      f.spec.store_retained = value.find('s') != std::string::npos;
    } else if (key == kShared) {
      size_t nl = value.find('\n');
      if (nl == std::string::npos) {
        ok = false;
      } else {
        f.spec.shared.emplace_back(value.substr(0, nl), value.substr(nl + 1));
      }
    }
  }
  std::erase_if(props, [](const auto& kv) {
    return kv.first == kQos || kv.first == kFlags || kv.first == kShared;
  });
  if (!ok || !has_qos || !has_flags) return std::nullopt;
  return f;
}

}  // namespace backend
