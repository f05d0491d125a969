// The health of one backend as a pure state machine: active check results and passive signals
// from the data path in, up/down and ejection out. Time is passed in; nothing here does I/O.
//
// Active checks follow rise/fall, as in HAProxy: an up backend goes down after `fall` failed
// checks in a row, a down one comes up after `rise` successful checks in a row. While it is
// counting towards a change, checks run at the faster `fast_interval`, so a failure is confirmed
// (or dismissed) quickly.
//
// Passive detection, as Envoy's outlier detection: `passive_failures` consecutive connect failures
// (or connections the backend resets at once) eject the backend for a backoff that doubles with
// each ejection (eject_base, 2x, 4x, ... up to eject_max). An active success ends an ejection
// early; ejections are forgotten after a quiet period of 2 x eject_max. The caller may hold an
// ejection back (the pool's max_ejection_percent): the backend then stays in, and is ejected at
// its next failure once allowed, unless a success came first.
//
//   HealthState h(policy);                 // starts up, like HAProxy and Envoy
//   if (auto t = h.OnCheck(false, now)) Log(*t);
//   bool usable = h.available(now);        // up and not ejected
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace health {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

struct Policy {
  uint32_t rise = 2;
  uint32_t fall = 2;
  Millis interval{500};
  Millis fast_interval{100};
  Millis timeout{300};
  uint32_t jitter_percent = 10;   // each interval varies by up to this much, either way
  uint32_t passive_failures = 3;  // 0 disables passive ejection
  Millis eject_base{1000};
  Millis eject_max{30000};
};

enum class Event { kWentDown, kCameUp, kEjected, kRestored };
std::string_view EventName(Event e);

class HealthState {
 public:
  explicit HealthState(const Policy& policy) : policy_(policy) {}

  // An active check's result. Returns the event it caused, if any.
  std::optional<Event> OnCheck(bool ok, Clock::time_point now);
  // A failed connect, or a connection reset before the backend said anything. `may_eject` false
  // holds back an ejection these failures call for (ejection_held() then says so).
  std::optional<Event> OnConnectFailure(Clock::time_point now, bool may_eject = true);
  void OnConnectSuccess() { consecutive_connect_failures_ = 0; }
  // Ends an ejection whose backoff has passed; call at ejected_until().
  std::optional<Event> Tick(Clock::time_point now);

  bool up() const { return up_; }
  bool ejected(Clock::time_point now) const { return now < ejected_until_; }
  bool available(Clock::time_point now) const { return up_ && !ejected(now); }
  // Enough failures in a row to eject, but the last ejection was held back.
  bool ejection_held() const {
    return policy_.passive_failures > 0 &&
           consecutive_connect_failures_ >= policy_.passive_failures;
  }
  // When an ejection ends by itself; for scheduling a re-evaluation.
  Clock::time_point ejected_until() const { return ejected_until_; }
  // The wait before the next active check, before jitter.
  Millis NextInterval() const;

 private:
  Policy policy_;
  bool up_ = true;
  uint32_t streak_ = 0;  // consecutive results pointing away from the current state
  uint32_t consecutive_connect_failures_ = 0;
  uint32_t ejections_ = 0;
  Clock::time_point ejected_until_{};
  Clock::time_point last_ejection_end_{};  // as planned, however early a success ended it
};

}  // namespace health
