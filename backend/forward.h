// What a message forwarded from one node to another asks of the receiving node, and how that
// travels: as the last user properties of the forwarded PUBLISH on the node-to-node link, behind
// the publisher's own, which the receiving node takes out before the message goes anywhere.
//
//   sb.link         always the last: the QoS the publisher used (the link carries QoS 1 at most),
//                   then flags: "n": deliver to the node's non-shared subscribers; "r": the
//                   publisher set RETAIN (for Retain As Published); "s": store as the node's
//                   retained message for the topic (or delete it, for an empty payload); then,
//                   if any of the two below come before it, "#" and how many. The count, not the
//                   names, tells the link's properties from the publisher's: a publisher's
//                   "sb.link.to" is the publisher's, passed on as it came (§3.3.2.3.7).
//   sb.link.shared  "GROUP\nFILTER", repeated: deliver to one member of each of these shared
//                   subscriptions (the sending node chose this node for them)
//   sb.link.to      "QOS[r][ ID ...]\nCLIENT": deliver to the session of CLIENT only, at QOS,
//                   with RETAIN if "r", with these subscription identifiers: the sending node
//                   matched the message against the session's subscriptions, and the session
//                   has since moved here (Shard::StartMove); nothing else is delivered
//
// Example: a QoS 1 retained publish on "a/b" matching non-shared subscriptions on node B and
// the shared subscription $share/g/a/+ there, forwarded to B:
//   sb.link.shared = "g\na/+", sb.link = "1nrs#1"
// The common case, a message for the node's non-shared subscribers, is one short property: every
// forwarded message carries it, and it is encoded, decoded and validated on each.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "mqtt/packet.h"

namespace backend {

// A delivery to one session that moved to the receiving node, as the sending node matched it.
struct ForwardTarget {
  std::string client_id;
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  absl::InlinedVector<uint32_t, 1> subscription_ids;
};

struct ForwardSpec {
  bool normal = false;  // deliver to non-shared subscribers
  bool store_retained = false;
  std::vector<std::pair<std::string, std::string>> shared;  // (group, filter)
  std::optional<ForwardTarget> target;                      // deliver to this session only

  bool empty() const { return !normal && !store_retained && shared.empty() && !target; }
};

// The user properties that carry `spec` and the publisher's QoS and RETAIN; without shared
// subscriptions, no allocation.
using ForwardProperties = absl::InlinedVector<std::pair<std::string, std::string>, 1>;
ForwardProperties EncodeForward(const ForwardSpec& spec, mqtt::QoS qos, bool retain);

struct ReceivedForward {
  ForwardSpec spec;
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
};

// Takes the link's user properties (the last ones) out of `properties`; nullopt when they are
// not there or do not parse (the sender is not a node of this cluster, or a build before this
// format).
std::optional<ReceivedForward> DecodeForward(mqtt::Properties& properties);

}  // namespace backend
