// Session state transitions.
#include "backend/session.h"

#include <algorithm>
#include <cassert>

#include "mqtt/topic.h"

namespace backend {

Session::Session(std::string client_id, uint64_t id, size_t max_queued)
    : client_id_(std::move(client_id)), id_(id), max_queued_(max_queued) {}

Session::EnqueueResult Session::Enqueue(Delivery delivery, bool online) {
  if (!online && delivery.qos == mqtt::QoS::k0) return EnqueueResult::kOfflineQos0;
  // max_queued counts messages beyond the send window (conf/broker.toml): while connected, as many
  // as the window has free slots leave the queue at the next PopNext. Without them a bound of 0
  // would drop every message instead of meaning "no queue".
  size_t free_window =
      online && inflight_.size() < send_window_ ? send_window_ - inflight_.size() : 0;
  if (queue_.size() >= max_queued_ + free_window) return EnqueueResult::kQueueFull;
  queue_.push_back(std::move(delivery));
  return EnqueueResult::kQueued;
}

bool Session::Subscribed(std::string_view topic) const {
  return std::any_of(subscriptions_.begin(), subscriptions_.end(), [&](const auto& s) {
    std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(s.first);
    return mqtt::TopicMatches(shared ? shared->filter : std::string_view(s.first), topic);
  });
}

uint16_t Session::NextPacketId() {
  // The window is at most 65535 wide, so a free identifier exists whenever there is room.
  assert(inflight_.size() < 65535);
  do {
    last_packet_id_ = last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1;
  } while (inflight_.contains(last_packet_id_));
  return last_packet_id_;
}

std::optional<Outgoing> Session::PopNext(Clock::time_point now) {
  while (!queue_.empty()) {
    Delivery& front = queue_.front();
    if (front.message->expired(now)) {
      ++expired_dropped_;
      queue_.pop_front();
      continue;
    }
    Outgoing out;
    if (front.qos != mqtt::QoS::k0) {
      if (inflight_.size() >= send_window_) return std::nullopt;
      out.packet_id = NextPacketId();
      FlightState state =
          front.qos == mqtt::QoS::k1 ? FlightState::kAwaitPuback : FlightState::kAwaitPubrec;
      inflight_.emplace(out.packet_id, InFlight{front, state, next_seq_++});
    }
    out.delivery = std::move(front);
    queue_.pop_front();
    return out;
  }
  return std::nullopt;
}

Session::AckResult Session::OnPuback(uint16_t packet_id) {
  auto it = inflight_.find(packet_id);
  if (it == inflight_.end() || it->second.state != FlightState::kAwaitPuback) {
    return AckResult::kUnknown;
  }
  inflight_.erase(it);
  return AckResult::kDone;
}

Session::AckResult Session::OnPubrec(uint16_t packet_id, mqtt::ReasonCode reason) {
  auto it = inflight_.find(packet_id);
  if (it == inflight_.end() || it->second.state == FlightState::kAwaitPuback) {
    return AckResult::kUnknown;
  }
  if (mqtt::IsError(reason)) {
    inflight_.erase(it);
    return AckResult::kDone;
  }
  // A repeated PUBREC (state already kAwaitPubcomp) is answered with PUBREL again.
  it->second.state = FlightState::kAwaitPubcomp;
  it->second.delivery.message.reset();  // the payload is delivered; only the identifier remains
  return AckResult::kSendPubrel;
}

Session::AckResult Session::OnPubcomp(uint16_t packet_id) {
  auto it = inflight_.find(packet_id);
  if (it == inflight_.end() || it->second.state != FlightState::kAwaitPubcomp) {
    return AckResult::kUnknown;
  }
  inflight_.erase(it);
  return AckResult::kDone;
}

std::vector<Outgoing> Session::Resends() const {
  std::vector<std::pair<uint64_t, Outgoing>> ordered;
  ordered.reserve(inflight_.size());
  for (const auto& [packet_id, f] : inflight_) {
    Outgoing out;
    out.packet_id = packet_id;
    if (f.state == FlightState::kAwaitPubcomp) {
      out.kind = Outgoing::Kind::kPubrel;
    } else {
      out.dup = true;
      out.delivery = f.delivery;
    }
    ordered.emplace_back(f.seq, std::move(out));
  }
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Outgoing> result;
  result.reserve(ordered.size());
  for (auto& [seq, out] : ordered)
    result.push_back(std::move(out));
  return result;
}

bool Session::BeginInboundQos2(uint16_t packet_id) {
  return inbound_qos2_.insert(packet_id).second;
}

bool Session::ReleaseInboundQos2(uint16_t packet_id) {
  return inbound_qos2_.erase(packet_id) > 0;
}

SessionSnapshot Session::Snapshot() const {
  SessionSnapshot s;
  s.subscriptions = subscriptions_;
  s.inflight = Resends();
  s.queued.assign(queue_.begin(), queue_.end());
  s.inbound_qos2.assign(inbound_qos2_.begin(), inbound_qos2_.end());
  return s;
}

void Session::Restore(SessionSnapshot snapshot) {
  subscriptions_ = std::move(snapshot.subscriptions);
  for (Outgoing& o : snapshot.inflight) {
    FlightState state = o.kind == Outgoing::Kind::kPubrel ? FlightState::kAwaitPubcomp
                        : o.delivery.qos == mqtt::QoS::k1 ? FlightState::kAwaitPuback
                                                          : FlightState::kAwaitPubrec;
    inflight_.emplace(o.packet_id, InFlight{std::move(o.delivery), state, next_seq_++});
    last_packet_id_ = o.packet_id;
  }
  for (Delivery& d : snapshot.queued)
    queue_.push_back(std::move(d));
  inbound_qos2_.insert(snapshot.inbound_qos2.begin(), snapshot.inbound_qos2.end());
}

}  // namespace backend
