// A session snapshot as bytes, for handing a session from one node to another (Redis carries
// the bytes). Messages are encoded as EncodeMessage does (message.h: an MQTT 5 PUBLISH behind
// the time it expires on the cluster's clock), so the project's codec does the work:
//
//   u8 version (4; 3, and 2 without the will, are still read)
//   u32 session expiry interval
//   u32 subscriptions, each: string filter, u8 options, u32 subscription id
//   u32 in flight, each: u8 kind (0 publish, 1 pubrel), u16 packet id, delivery (publish only)
//   u32 queued, each: delivery
//   u32 inbound QoS 2 ids, each: u16
//   u8 will (0 none, 1 one follows): delay left as u32 seconds + u16 milliseconds, string topic,
//      string payload, u8 qos | retain << 2, will properties as in a CONNECT
//   delivery: u8 qos, u8 retain, u32 subscription ids (each u32), u32 length + PUBLISH bytes
//
// A record in Redis may be followed by subscription changes, appended as the client makes them
// (so that n SUBSCRIBEs cost O(n) bytes written, not O(n²)), each applied in order on top:
//   u8 1 (subscribed), subscription as above; or u8 2 (unsubscribed), string filter
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/session.h"

namespace backend {

std::string EncodeSnapshot(const SessionSnapshot& snapshot, Clock::time_point now);
[[nodiscard]] absl::StatusOr<SessionSnapshot> DecodeSnapshot(std::string_view bytes,
                                                             Clock::time_point now);

// The changes of `filters` in `subscriptions` (subscribed if there, else unsubscribed), as a record
// appends them to its snapshot.
std::string EncodeSubscriptionChanges(const Subscriptions& subscriptions,
                                      const std::vector<std::string>& filters);

// One queued delivery alone, as a persistent session's queue in Redis holds them.
std::string EncodeDelivery(const Delivery& delivery, Clock::time_point now);
[[nodiscard]] absl::StatusOr<Delivery> DecodeDelivery(std::string_view bytes,
                                                      Clock::time_point now);

}  // namespace backend
