// PUBLISH in both directions, and PUBREL from the client.
//
// Inbound: resolve the topic alias, check the QoS 2 receive window, the access rules and the
// payload format, then route the message once and acknowledge it. A QoS 2 message is delivered on
// its first PUBLISH and remembered by packet identifier until PUBREL, so a retransmission is
// acknowledged again but not delivered again (MQTT 5.0 §4.3.3).
//
// Outbound: each session's copy is a header written in front of the shared payload, with this
// subscriber's packet identifier, QoS, RETAIN, subscription identifiers, topic alias and the
// remaining expiry interval.
#include <spdlog/spdlog.h>

#include "backend/broker.h"
#include "backend/connection.h"
#include "backend/forward.h"
#include "mqtt/encoder.h"
#include "mqtt/utf8.h"

namespace backend {

using mqtt::ReasonCode;

void Connection::HandlePublish(mqtt::Publish&& p) {
  if (!link_peer_.empty()) return HandleForward(std::move(p));
  const BrokerLimits& limits = shard_.config().limits;
  ShardMetrics& metrics = shard_.metrics();
  metrics.messages_received[static_cast<size_t>(p.qos)].Add();

  if (!p.properties.subscription_identifiers.empty()) {
    return ProtocolError(ReasonCode::kProtocolError, "subscription identifier from a client");
  }
  if (std::optional<uint16_t> alias = p.properties.topic_alias) {  // §3.3.2.3.4
    if (*alias > limits.topic_alias_maximum) {
      return ProtocolError(ReasonCode::kTopicAliasInvalid, "topic alias above the maximum");
    }
    if (aliases_in_.size() <= *alias) aliases_in_.resize(limits.topic_alias_maximum + 1);
    if (p.topic.empty()) {
      if (aliases_in_[*alias].empty()) {
        return ProtocolError(ReasonCode::kProtocolError, "unknown topic alias");
      }
      p.topic = aliases_in_[*alias];
    } else {
      aliases_in_[*alias] = p.topic;
    }
  }

  if (p.qos == mqtt::QoS::k2) {
    if (!session_->BeginInboundQos2(p.packet_id)) {
      // A retransmission: delivered already. Its PUBREC still takes its turn (§4.6).
      return Acknowledge(p.qos, p.packet_id, ReasonCode::kSuccess);
    }
    // §3.3.4, against the Receive Maximum announced in CONNACK. 3.1.1 has none to announce, and
    // its clients (and mosquitto) expect no limit but the 65,535 packet identifiers.
    if (version_ == mqtt::Version::k5 && session_->inbound_qos2_pending() > limits.max_inflight) {
      // Not taken: a persistent session's client sends it again after reconnecting (§4.4), and
      // must not be told it was delivered already.
      session_->ReleaseInboundQos2(p.packet_id);
      return ProtocolError(ReasonCode::kReceiveMaximumExceeded, "receive maximum exceeded");
    }
  }

  ReasonCode reason = ReasonCode::kSuccess;
  std::shared_ptr<AckWait> wait;
  if (!shard_.broker().access().MayPublish(p.topic)) {
    reason = ReasonCode::kNotAuthorized;
    metrics.Drop(DropReason::kNotAuthorized);
  } else if (p.properties.payload_format_indicator == 1 && !mqtt::IsValidUtf8(p.payload)) {
    reason = ReasonCode::kPayloadFormatInvalid;  // §3.3.2.3.2
    metrics.Drop(DropReason::kPayloadFormatInvalid);
  } else {
    MessagePtr message = MakeMessage(std::move(p.topic), std::move(p.payload), p.qos, p.retain,
                                     std::move(p.properties), session_->id(), last_packet_at_);
    if (message->retain) shard_.broker().Retain(message);
    // In a cluster, the acknowledgement waits until every node the message goes to has taken it.
    if (p.qos != mqtt::QoS::k0 && shard_.broker().cluster() != nullptr) {
      wait = HoldAck(p.qos, p.packet_id, reason);
    }
    if (Backpressure* congested = shard_.Publish(message, wait)) PauseFor(*congested);
  }
  if (p.qos == mqtt::QoS::k0) return;
  if (wait != nullptr) {
    wait->Seal();
  } else {
    Acknowledge(p.qos, p.packet_id, reason);
  }
}

void Connection::Acknowledge(mqtt::QoS qos, uint16_t packet_id, ReasonCode reason) {
  if (held_acks_.empty()) return SendAck(qos, packet_id, reason);
  held_acks_.push_back({next_ack_seq_++, qos, packet_id, reason, true});  // behind the held ones
  ReleaseAcks();
}

void Connection::SendAck(mqtt::QoS qos, uint16_t packet_id, ReasonCode reason) {
  bool v5 = version_ == mqtt::Version::k5;
  if (qos == mqtt::QoS::k1) {
    Send(mqtt::Puback{.packet_id = packet_id, .reason = v5 ? reason : ReasonCode::kSuccess});
  } else if (qos == mqtt::QoS::k2) {
    if (mqtt::IsError(reason) && v5) {
      session_->ReleaseInboundQos2(packet_id);  // an error PUBREC ends the exchange
      Send(mqtt::Pubrec{.packet_id = packet_id, .reason = reason});
    } else {
      Send(mqtt::Pubrec{.packet_id = packet_id});
    }
  }
}

std::shared_ptr<AckWait> Connection::HoldAck(mqtt::QoS qos, uint16_t packet_id, ReasonCode reason) {
  uint64_t seq = next_ack_seq_++;
  held_acks_.push_back({seq, qos, packet_id, reason, false});
  return std::make_shared<AckWait>([weak = weak_from_this(), seq] {
    auto self = weak.lock();
    if (!self || self->held_acks_.empty()) return;
    // Every seq taken is pushed, and only the front is popped: the held ones are consecutive.
    // (A 3.1.1 publisher has no receive maximum: tens of thousands may wait.)
    uint64_t first = self->held_acks_.front().seq;
    if (seq >= first && seq - first < self->held_acks_.size()) {
      self->held_acks_[seq - first].ready = true;
    }
    self->ReleaseAcks();
  });
}

void Connection::ReleaseAcks() {
  bool sent = false;
  while (!held_acks_.empty() && held_acks_.front().ready) {
    const HeldAck& a = held_acks_.front();
    if (!closed_ && session_ != nullptr) SendAck(a.qos, a.packet_id, a.reason);
    held_acks_.pop_front();
    sent = true;
  }
  if (sent) shard_.MarkDirty(*this);
}

void Connection::HandleForward(mqtt::Publish&& p) {
  // From another node: its checks were made there; route to this node's sessions only.
  std::optional<ReceivedForward> f = DecodeForward(p.properties);
  if (!f) {
    // A node of another build (a rolling upgrade), or a bug. Closing the link would bring the
    // same forward again first, without end, and hold back every publisher behind it: it is
    // dropped, counted and acknowledged instead, and the link goes on.
    if (!std::exchange(malformed_forward_logged_, true)) {
      spdlog::error(
          "cluster: node {} forwarded a message without the link's properties; dropped "
          "(are the nodes of one build?)",
          link_peer_);
    }
    shard_.metrics().Drop(DropReason::kMalformedForward);
    if (p.qos == mqtt::QoS::k1) Send(mqtt::Puback{.packet_id = p.packet_id});
    return;
  }
  MessagePtr message = MakeMessage(std::move(p.topic), std::move(p.payload), f->qos, f->retain,
                                   std::move(p.properties), 0, last_packet_at_);
  if (f->spec.store_retained) shard_.broker().RetainLocal(message);
  Backpressure* congested = shard_.PublishForwarded(message, std::move(f->spec), link_peer_);
  if (congested != nullptr) PauseFor(*congested);  // the peer's link to here congests in turn
  // Taken: it is in the sessions' queues (those of other shards within this handler's posts).
  if (p.qos == mqtt::QoS::k1) Send(mqtt::Puback{.packet_id = p.packet_id});
}

void Connection::HandlePubrel(const mqtt::Pubrel& p) {
  bool known = session_->ReleaseInboundQos2(p.packet_id);
  bool v5 = version_ == mqtt::Version::k5;
  Send(mqtt::Pubcomp{
      .packet_id = p.packet_id,
      .reason = known || !v5 ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound});
}

void Connection::SendHeldResends(Clock::time_point now) {
  while (!held_resends_.empty()) {
    const Outgoing& o = held_resends_.front();
    // Every held resend is in the session's in-flight count, so what is in flight beyond them was
    // sent on this connection. A PUBREL does not take from the quota (§4.9), but waits its turn to
    // keep the order.
    auto sent =
        static_cast<int64_t>(session_->inflight()) - static_cast<int64_t>(held_resends_.size());
    if (o.kind == Outgoing::Kind::kPublish && sent >= send_window_) return;
    SendOutgoing(o, now);
    held_resends_.pop_front();
  }
}

void Connection::SendOutgoing(const Outgoing& o, Clock::time_point now) {
  if (o.kind == Outgoing::Kind::kPubrel) {
    Send(mqtt::Pubrel{.packet_id = o.packet_id});
    return;
  }
  const Message& m = *o.delivery.message;
  const bool v5 = version_ == mqtt::Version::k5;
  mqtt::PublishHeader h{.topic = m.topic,
                        .qos = o.delivery.qos,
                        .retain = o.delivery.retain,
                        .dup = o.dup,
                        .packet_id = o.packet_id,
                        .properties = m.properties.get()};
  if (v5) {
    h.subscription_identifiers = o.delivery.subscription_ids;
    if (m.expires_at) {
      // What is left of the interval, rounded up so that a live message never says 0 (§3.3.2.3.3).
      auto left = std::chrono::ceil<std::chrono::seconds>(*m.expires_at - now).count();
      h.message_expiry_interval = static_cast<uint32_t>(std::max<int64_t>(left, 1));
    }
  }
  std::optional<uint16_t> new_alias;
  if (v5 && client_alias_max_ > 0) {
    auto it = aliases_out_.find(m.topic);
    if (it != aliases_out_.end()) {
      h.topic_alias = it->second;
      h.topic = {};  // the alias stands for the topic
    } else if (aliases_out_.size() < client_alias_max_) {
      new_alias = static_cast<uint16_t>(aliases_out_.size() + 1);
      h.topic_alias = new_alias;  // sent with the topic, to establish the mapping
    }
  }
  // The size is that of the packet as it goes out, alias included: establishing an alias costs
  // three bytes, which must not take the packet over the client's maximum. Then it goes without.
  auto too_large = [&] {
    return client_max_packet_ != 0 &&
           mqtt::PublishPacketSize(h, m.payload.size(), version_) > client_max_packet_;
  };
  if (new_alias && too_large()) {
    new_alias.reset();
    h.topic_alias.reset();
  }
  if (too_large()) {
    // Too large for this client: drop it as if it had been delivered (§3.1.2.11.4).
    shard_.metrics().Drop(DropReason::kTooLarge);
    if (o.packet_id != 0) session_->Forget(o.packet_id);
    return;
  }
  if (new_alias) aliases_out_.emplace(m.topic, *new_alias);
  mqtt::EncodePublishHeader(h, m.payload.size(), version_, out_.bytes());
  out_.AppendPayload(o.delivery.message);
  shard_.metrics().messages_sent[static_cast<size_t>(o.delivery.qos)].Add();
}

}  // namespace backend
