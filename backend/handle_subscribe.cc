// SUBSCRIBE and UNSUBSCRIBE (MQTT 5.0 §3.8, §3.10).
//
// Each topic filter gets its own answer: granted QoS, or 0x8F for an invalid filter (or one with
// more than max_filter_levels levels), 0x87 when an access rule forbids it, 0x97 for a new filter
// beyond max_subscriptions (3.1.1 maps all three to 0x80). Accepted filters go to every shard's
// routing replica; SUBACK is sent once all replicas have them, followed by the retained messages
// the Retain Handling option asks for (0: always, 1: only for a new subscription, 2: never; never
// for shared subscriptions, §4.8.2), except one older than a live message of its topic that the
// client was sent meanwhile.
#include <algorithm>

#include "backend/broker.h"
#include "backend/connection.h"
#include "mqtt/topic.h"

namespace backend {

using mqtt::ReasonCode;

namespace {

ReasonCode Granted(mqtt::QoS qos) {
  return static_cast<ReasonCode>(static_cast<uint8_t>(qos));
}

// More levels than `max` (0: no limit).
bool TooDeep(std::string_view filter, uint32_t max) {
  return max > 0 && static_cast<size_t>(std::count(filter.begin(), filter.end(), '/')) >= max;
}

}  // namespace

void Connection::HandleSubscribe(mqtt::Subscribe&& s) {
  const BrokerLimits& limits = shard_.config().limits;
  std::optional<uint32_t> subscription_id;
  if (!s.properties.subscription_identifiers.empty()) {
    subscription_id = s.properties.subscription_identifiers.front();
  }
  mqtt::Suback ack{.packet_id = s.packet_id};
  std::vector<RouteChange> changes;
  struct RetainedRequest {
    std::string filter;
    mqtt::QoS qos;
    uint32_t subscription_id;
  };
  std::vector<RetainedRequest> retained;

  // A protocol error anywhere in the packet refuses all of it: nothing is saved first (a
  // persistent session would keep a subscription that was never routed).
  for (const mqtt::TopicSubscription& t : s.topics) {
    std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(t.filter);
    // A malformed one ($share//x) is no shared subscription: its SUBACK says 0x8F.
    if (shared && !shared->group.empty() && t.options.no_local) {  // §3.8.3.1
      return ProtocolError(ReasonCode::kProtocolError, "No Local on a shared subscription");
    }
  }
  for (mqtt::TopicSubscription& t : s.topics) {
    std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(t.filter);
    std::string_view filter = shared ? shared->filter : std::string_view(t.filter);
    if (shared && shared->group.empty()) {
      ack.reasons.push_back(ReasonCode::kTopicFilterInvalid);
      continue;
    }
    if (!mqtt::IsValidTopicFilter(filter) || TooDeep(filter, limits.max_filter_levels)) {
      ack.reasons.push_back(ReasonCode::kTopicFilterInvalid);
      continue;
    }
    if (!shard_.broker().access().MaySubscribe(filter)) {
      ack.reasons.push_back(ReasonCode::kNotAuthorized);
      continue;
    }
    if (limits.max_subscriptions > 0 &&
        session_->subscriptions().size() >= limits.max_subscriptions &&
        !session_->subscriptions().contains(t.filter)) {
      ack.reasons.push_back(ReasonCode::kQuotaExceeded);
      continue;
    }
    SubscriptionRecord record{t.options, subscription_id.value_or(0)};
    auto [it, is_new] = session_->subscriptions().insert_or_assign(t.filter, record);
    if (is_new) shard_.metrics().subscriptions.Add(1);
    changes.push_back(shard_.RouteFor(t.filter, record, session_->id(), /*add=*/true));
    uint8_t rh = t.options.retain_handling;
    if (!shared && (rh == 0 || (rh == 1 && is_new))) {
      retained.push_back({std::string(filter), t.options.qos, record.subscription_id});
    }
    ack.reasons.push_back(Granted(t.options.qos));
  }
  if (!changes.empty()) shard_.SubscriptionsChanged(*session_, changes);

  // This shard routes to the new subscriptions at once, the others (and, in a cluster, the other
  // nodes) once they have them, when the SUBACK goes out with the retained messages. A live
  // message of the meantime is newer than the retained one of its topic then, or the same: the
  // retained one is not sent after it (§4.6), only one newer than anything live the client has.
  bool watch_live = !retained.empty();
  if (watch_live) ++subscribes_pending_;
  shard_.ChangeRoutes(std::move(changes), [self = shared_from_this(), ack = std::move(ack),
                                           retained = std::move(retained), watch_live] {
    if (self->closed_ || self->session_ == nullptr) return;
    self->Send(ack);
    Clock::time_point now = Clock::now();
    size_t max_queued = self->shard_.config().limits.max_queued_messages;
    auto seen_live = [&](const Message& m) {
      auto it = self->live_while_subscribing_.find(m.topic);
      return it != self->live_while_subscribing_.end() && it->second >= m.received_at;
    };
    for (const RetainedRequest& r : retained) {
      for (const MessagePtr& m : self->shard_.broker().MatchRetained(r.filter, now)) {
        if (seen_live(*m)) continue;
        Delivery d{.message = m, .qos = std::min(m->qos, r.qos), .retain = true};
        if (r.subscription_id != 0) d.subscription_ids.push_back(r.subscription_id);
        // A filter may match more retained messages than the queue holds: move them on into the
        // write buffer as the queue fills (as Shard::Deliver does for bursts), rather than drop
        // them for a client that has not even had the chance to read.
        if (self->session_->queued() >= max_queued) self->Drain();
        if (self->session_->Enqueue(std::move(d), true) != Session::EnqueueResult::kQueued) {
          self->shard_.metrics().Drop(DropReason::kQueueFull);
        }
      }
    }
    if (watch_live && --self->subscribes_pending_ == 0) self->live_while_subscribing_.clear();
    self->shard_.MarkDirty(*self);
  });
}

void Connection::HandleUnsubscribe(mqtt::Unsubscribe&& u) {
  mqtt::Unsuback ack{.packet_id = u.packet_id};
  std::vector<RouteChange> changes;
  for (const std::string& full : u.filters) {
    if (session_->subscriptions().erase(full) == 0) {
      ack.reasons.push_back(ReasonCode::kNoSubscriptionExisted);
      continue;
    }
    shard_.metrics().subscriptions.Add(-1);
    changes.push_back(shard_.RouteFor(full, {}, session_->id(), /*add=*/false));
    ack.reasons.push_back(ReasonCode::kSuccess);
  }
  if (!changes.empty()) shard_.SubscriptionsChanged(*session_, changes);
  shard_.ChangeRoutes(std::move(changes), [self = shared_from_this(), ack = std::move(ack)] {
    if (self->closed_) return;
    self->Send(ack);
    self->shard_.MarkDirty(*self);
  });
}

}  // namespace backend
