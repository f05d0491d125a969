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
  ForwardProperties out;
  for (const auto& [group, filter] : spec.shared)
    out.emplace_back(kShared, group + "\n" + filter);
  if (spec.target) out.emplace_back(kTarget, EncodeTarget(*spec.target));
  std::string link(1, static_cast<char>('0' + static_cast<int>(qos)));
  if (spec.normal) link += 'n';
  if (retain) link += 'r';
  if (spec.store_retained) link += 's';
  if (!out.empty()) {
    link += '#';
    link += std::to_string(out.size());
  }
  out.emplace_back(kLink, std::move(link));
  return out;
}

std::optional<ReceivedForward> DecodeForward(mqtt::Properties& properties) {
  // The link's own properties are the last ones, "sb.link" last of all, with the count of those
  // before it: whatever precedes them is the publisher's, whatever its names.
  auto& props = properties.user_properties;
  if (props.empty() || props.back().first != kLink) return std::nullopt;
  std::string_view value = props.back().second;
  if (value.empty() || value[0] < '0' || value[0] > '2') return std::nullopt;
  ReceivedForward f;
  f.qos = static_cast<mqtt::QoS>(value[0] - '0');
  std::string_view flags = value.substr(1);
  size_t others = 0;
  if (size_t hash = flags.find('#'); hash != std::string_view::npos) {
    std::string_view count = flags.substr(hash + 1);
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), others);
    if (ec != std::errc() || end != count.data() + count.size() || others == 0 ||
        others >= props.size()) {
      return std::nullopt;
    }
    flags = flags.substr(0, hash);
  }
  f.spec.normal = flags.find('n') != std::string_view::npos;
  f.retain = flags.find('r') != std::string_view::npos;
  f.spec.store_retained = flags.find('s') != std::string_view::npos;
  size_t first = props.size() - 1 - others;
  for (size_t i = first; i + 1 < props.size(); ++i) {
    const auto& [key, v] = props[i];
    if (key == kShared) {
      size_t nl = v.find('\n');
      if (nl == std::string::npos) return std::nullopt;
      f.spec.shared.emplace_back(v.substr(0, nl), v.substr(nl + 1));
    } else if (key == kTarget && !f.spec.target) {
      f.spec.target = DecodeTarget(v);
      if (!f.spec.target) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  props.erase(props.begin() + static_cast<std::ptrdiff_t>(first), props.end());
  return f;
}

}  // namespace backend
