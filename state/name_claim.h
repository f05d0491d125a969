// Whether another live process writes under this one's name: two proxies with one `instance`, two
// broker nodes with one `node`. The shared state tells its writers apart by name, and two under
// one name overwrite each other's connection counts, routes and sessions without an error.
//
// Each round writes this run's random id under the name and reads back the value it replaced, in
// one command (SET KEY RUN GET PX TTL). That value is this run's own unless another process wrote
// under the name since this run's last round. A restarted process finds its predecessor's id on
// its first round (the key outlives the process by up to TTL): that round is not counted. Two
// processes need not write in turn (one may skip rounds, or beat faster), so a round that finds
// this run's own value says little: the name counts as shared until TTL has passed since
// another run was last seen.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "state/redis_client.h"

namespace state {

class NameClaim {
 public:
  // `what` names the name in the log: "proxy instance", "node".
  NameClaim(std::string what, std::string name, std::string key, std::chrono::milliseconds ttl);

  // This round's command; its reply goes to Replied.
  std::vector<std::string> Command() const;
  // A failed round says nothing. Logs an error when another run appears, and when it is gone.
  void Replied(const absl::StatusOr<RedisReply>& reply,
               std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // Another process wrote under the name within TTL.
  bool shared() const { return shared_; }
  const std::string& run() const { return run_; }

 private:
  std::string what_;
  std::string name_;
  std::string key_;
  std::chrono::milliseconds ttl_;
  std::string run_;
  bool written_ = false;  // a round of this run went through
  bool shared_ = false;
  std::chrono::steady_clock::time_point other_seen_;  // last, while shared_
};

}  // namespace state
