// PUBACK, PUBREC and PUBCOMP from the client: the outbound QoS 1 and 2 flows (MQTT 5.0 §4.3).
// An acknowledgement frees a slot of the send window; the session queue is pumped at the shard's
// flush, once the packets of this read are all handled.
#include "backend/connection.h"

namespace backend {

void Connection::HandlePuback(const mqtt::Puback& p) {
  if (session_->OnPuback(p.packet_id) != Session::AckResult::kDone) return;
  DropHeldResend(p.packet_id);
  shard_.MarkDirty(*this);  // a slot of the send window is free
}

void Connection::HandlePubrec(const mqtt::Pubrec& p) {
  switch (session_->OnPubrec(p.packet_id, p.reason)) {
    case Session::AckResult::kSendPubrel:
      DropHeldResend(p.packet_id);
      Send(mqtt::Pubrel{.packet_id = p.packet_id});
      break;
    case Session::AckResult::kDone:
      DropHeldResend(p.packet_id);
      shard_.MarkDirty(*this);
      break;
    case Session::AckResult::kUnknown:
      // §4.3.3: answer an unknown identifier so the client can finish its side; an error PUBREC
      // has finished it already.
      if (!mqtt::IsError(p.reason)) {
        Send(mqtt::Pubrel{.packet_id = p.packet_id,
                          .reason = mqtt::ReasonCode::kPacketIdentifierNotFound});
      }
      break;
  }
}

void Connection::HandlePubcomp(const mqtt::Pubcomp& p) {
  if (session_->OnPubcomp(p.packet_id) != Session::AckResult::kDone) return;
  DropHeldResend(p.packet_id);
  shard_.MarkDirty(*this);  // a slot of the send window is free
}

void Connection::DropHeldResend(uint16_t packet_id) {
  // A client may acknowledge what it got on its previous connection before the resend reaches
  // it; the flow has moved on, and the held resend would repeat a step of it.
  std::erase_if(held_resends_, [packet_id](const Outgoing& o) { return o.packet_id == packet_id; });
}

}  // namespace backend
