// The forward format's encoding.
#include "backend/forward.h"

#include <algorithm>
#include <charconv>

namespace backend {
namespace {
constexpr std::string_view kLink = "sb.link";
constexpr std::string_view kShared = "sb.link.shared";
constexpr std::string_view kTarget = "sb.link.to";

std::string EncodeTarget(const ForwardTarget& t) {
  std::string out(1, static_cast<char>('0' + static_cast<int>(t.qos)));
  if (t.retain) out += 'r';
  for (uint32_t id : t.subscription_ids) {
    out += ' ';
    out += std::to_string(id);
  }
  out += '\n';
  out += t.client_id;
  return out;
}

std::optional<ForwardTarget> DecodeTarget(std::string_view value) {
  size_t nl = value.find('\n');
  if (nl == std::string_view::npos || nl == 0 || value[0] < '0' || value[0] > '2') {
    return std::nullopt;
  }
  ForwardTarget t{.client_id = std::string(value.substr(nl + 1)),
                  .qos = static_cast<mqtt::QoS>(value[0] - '0')};
  std::string_view rest = value.substr(1, nl - 1);
  if (rest.starts_with('r')) {
    t.retain = true;
    rest.remove_prefix(1);
  }
  while (!rest.empty()) {
    if (rest[0] != ' ') return std::nullopt;
    rest.remove_prefix(1);
    uint32_t id = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), id);
    if (ec != std::errc() || id == 0) return std::nullopt;
    t.subscription_ids.push_back(id);
    rest.remove_prefix(static_cast<size_t>(end - rest.data()));
  }
  return t;
}

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
  if (spec.target) out.emplace_back(kTarget, EncodeTarget(*spec.target));
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
    } else if (key == kTarget) {
      f.spec.target = DecodeTarget(value);
      ok = ok && f.spec.target.has_value();
    }
  }
  std::erase_if(props, [](const auto& kv) {
    return kv.first == kLink || kv.first == kShared || kv.first == kTarget;
  });
  if (!ok || !has_link) return std::nullopt;
  return f;
}

}  // namespace backend
