// CONNECT on the session's shard: negotiate keep alive, session expiry and limits, attach the
// session (new, resumed or taken over), answer CONNACK, and resend what was in flight.
// The checks that need no session (protocol version, client identifier, authentication method,
// max_connections) were made by the handshake before the connection came here.
#include <algorithm>
#include <iterator>

#include "backend/broker.h"
#include "backend/connection.h"

namespace backend {

void Connection::Start() {
  // In a cluster the client id becomes this node's first, with the session another node may
  // hand over (Shard::Claim). Another node's link claims nothing.
  if (shard_.broker().cluster() != nullptr && !IsLinkClientId(connect_.client_id)) {
    shard_.Claim(connect_, [self = shared_from_this()] {
      if (!self->closed_) self->Begin();
    });
    return;
  }
  Begin();
}

void Connection::Begin() {
  HandleConnect();
  if (closed_) return;
  if (!rx_.empty()) {
    // Packets the client sent right behind its CONNECT.
    std::string pending = std::move(rx_);
    rx_.clear();
    size_t consumed = Process(pending, last_packet_at_);
    if (closed_) return;
    rx_ = pending.substr(consumed);
  }
  Pump();
  WaitReadable();
}

void Connection::HandleConnect() {
  const BrokerLimits& limits = shard_.config().limits;
  const bool v5 = version_ == mqtt::Version::k5;
  Clock::time_point now = Clock::now();
  last_packet_at_ = now;
  mqtt::Properties& asked = connect_.properties;

  // Keep alive. A 5.0 client asking for more than the maximum, or for none while a maximum is
  // configured, is told the server's value (§3.2.2.3.14). A 3.1.1 client asking for more was
  // refused by the handshake, as 3.1.1 cannot tell it.
  uint16_t keep_alive = connect_.keep_alive_s;
  std::optional<uint16_t> server_keep_alive;
  bool capped = limits.max_keepalive_s < 65535;
  if (v5 && (keep_alive > limits.max_keepalive_s || (keep_alive == 0 && capped))) {
    keep_alive = limits.max_keepalive_s;
    server_keep_alive = keep_alive;
  }
  if (keep_alive > 0) {
    keep_alive_timeout_ = std::chrono::milliseconds(keep_alive * 1500);  // §3.1.2.10
    ArmKeepAlive(now + keep_alive_timeout_);
  }

  // Session expiry: 5.0 asks for it; 3.1.1 clean session 0 means "never" (§3.1.2.11.2).
  uint32_t requested =
      v5 ? asked.session_expiry_interval.value_or(0) : (connect_.clean_start ? 0 : 0xFFFFFFFF);
  session_expiry_s_ = shard_.broker().CapSessionExpiry(requested);

  if (connect_.will) {
    will_ = std::move(connect_.will);
    connect_.will.reset();
    will_delay_s_ = will_->properties.will_delay_interval.value_or(0);
  }
  client_max_packet_ = asked.maximum_packet_size.value_or(0);
  // Another node of the cluster, linking to this one to forward its messages (node_link.h).
  if (shard_.broker().cluster() != nullptr && IsLinkClientId(connect_.client_id)) {
    for (const auto& [key, value] : asked.user_properties) {
      if (key == "sb.link.node") link_peer_ = value;
    }
  }
  // Each alias towards the client is a topic kept per connection: no more than the broker lets a
  // client use towards it, however many the client allows.
  client_alias_max_ = std::min(asked.topic_alias_maximum.value_or(0), limits.topic_alias_maximum);

  Shard::Attached attached = shard_.Attach(*this, connect_, session_expiry_s_);
  session_ = attached.session;
  send_window_ = std::min(asked.receive_maximum.value_or(65535), limits.max_inflight);
  session_->set_send_window(send_window_);

  mqtt::Connack ack{.session_present = attached.present};
  if (v5) {
    mqtt::Properties& p = ack.properties;
    p.receive_maximum = limits.max_inflight;
    p.maximum_packet_size = limits.max_packet_bytes;
    if (limits.topic_alias_maximum > 0) p.topic_alias_maximum = limits.topic_alias_maximum;
    if (client_id_assigned_) p.assigned_client_identifier = connect_.client_id;
    p.server_keep_alive = server_keep_alive;
    if (session_expiry_s_ != requested) p.session_expiry_interval = session_expiry_s_;
  }
  Send(ack);
  // What was in flight when the session's last connection ended, in its original order and with
  // its original packet identifiers (§4.4), as much of it as the client's Receive Maximum lets
  // out now; the rest follows as acknowledgements come (§4.9).
  std::vector<Outgoing> resends = session_->Resends();
  held_resends_.assign(std::make_move_iterator(resends.begin()),
                       std::make_move_iterator(resends.end()));
  SendHeldResends(now);
}

}  // namespace backend
