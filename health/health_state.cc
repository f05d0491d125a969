// HealthState transitions.
#include "health/health_state.h"

#include <algorithm>

namespace health {

std::string_view EventName(Event e) {
  switch (e) {
    case Event::kWentDown:
      return "down";
    case Event::kCameUp:
      return "up";
    case Event::kEjected:
      return "ejected";
    case Event::kRestored:
      return "restored";
  }
  return "?";
}

std::optional<Event> HealthState::OnCheck(bool ok, Clock::time_point now) {
  if (ok && ejected(now)) {
    ejected_until_ = {};  // an active success ends an ejection
    consecutive_connect_failures_ = 0;
    if (up_) {
      streak_ = 0;  // and breaks a run of failed checks, as any success does
      return Event::kRestored;
    }
  }
  if (ok == up_) {
    streak_ = 0;
    return std::nullopt;
  }
  ++streak_;
  if (streak_ < (up_ ? policy_.fall : policy_.rise)) return std::nullopt;
  up_ = ok;
  streak_ = 0;
  return up_ ? Event::kCameUp : Event::kWentDown;
}

std::optional<Event> HealthState::OnConnectFailure(Clock::time_point now, bool may_eject) {
  if (policy_.passive_failures == 0 || ejected(now)) return std::nullopt;
  consecutive_connect_failures_ =
      std::min(consecutive_connect_failures_ + 1, policy_.passive_failures);
  if (consecutive_connect_failures_ < policy_.passive_failures || !may_eject) return std::nullopt;
  consecutive_connect_failures_ = 0;
  // Forgotten after a quiet period, from the end of the last ejection.
  if (ejections_ > 0 && now - last_ejection_end_ > 2 * policy_.eject_max) ejections_ = 0;
  ++ejections_;
  Millis backoff = policy_.eject_base;
  for (uint32_t i = 1; i < ejections_ && backoff < policy_.eject_max; ++i)
    backoff *= 2;
  ejected_until_ = now + std::min(backoff, policy_.eject_max);
  last_ejection_end_ = ejected_until_;
  return Event::kEjected;
}

std::optional<Event> HealthState::Tick(Clock::time_point now) {
  if (ejected_until_ == Clock::time_point{} || now < ejected_until_) return std::nullopt;
  ejected_until_ = {};
  return Event::kRestored;
}

Millis HealthState::NextInterval() const {
  return streak_ > 0 ? policy_.fast_interval : policy_.interval;
}

}  // namespace health
