// The forward format's encoding.
#include "backend/forward.h"

#include <algorithm>

namespace backend {
namespace {
constexpr std::string_view kLink = "sb.link";
constexpr std::string_view kShared = "sb.link.shared";
}  // namespace

ForwardProperties EncodeForward(const ForwardSpec& spec, mqtt::QoS qos, bool retain) {
  std::string link(1, static_cast<char>('0' + static_cast<int>(qos)));
  if (spec.normal) link += 'n';
  if (retain) link += 'r';
  if (spec.store_retained) link += 's';
  ForwardProperties out;
  out.emplace_back(kLink, std::move(link));
  for (const auto& [group, filter] : spec.shared)
    out.emplace_back(kShared, group + "\n" + filter);
  return out;
}

std::optional<ReceivedForward> DecodeForward(mqtt::Properties& properties) {
  ReceivedForward f;
  bool has_link = false, ok = true;
  auto& props = properties.user_properties;
  for (const auto& [key, value] : props) {
    if (key == kLink) {
      has_link = !value.empty() && value[0] >= '0' && value[0] <= '2';
      if (!has_link) continue;
      f.qos = static_cast<mqtt::QoS>(value[0] - '0');
      std::string_view flags = std::string_view(value).substr(1);
      f.spec.normal = flags.find('n') != std::string_view::npos;
      f.retain = flags.find('r') != std::string_view::npos;
      f.spec.store_retained = flags.find('s') != std::string_view::npos;
    } else if (key == kShared) {
      size_t nl = value.find('\n');
      if (nl == std::string::npos) {
        ok = false;
      } else {
        f.spec.shared.emplace_back(value.substr(0, nl), value.substr(nl + 1));
      }
    }
  }
  std::erase_if(props, [](const auto& kv) { return kv.first == kLink || kv.first == kShared; });
  if (!ok || !has_link) return std::nullopt;
  return f;
}

}  // namespace backend
