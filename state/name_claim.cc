// NameClaim: SET ... GET each round, and what the value it replaced says.
#include "state/name_claim.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <random>

namespace state {

NameClaim::NameClaim(std::string what, std::string name, std::string key,
                     std::chrono::milliseconds ttl)
    : what_(std::move(what)), name_(std::move(name)), key_(std::move(key)), ttl_(ttl) {
  std::random_device random;
  run_ = fmt::format("{:08x}{:08x}", random(), random());
}

std::vector<std::string> NameClaim::Command() const {
  return {"SET", key_, run_, "GET", "PX", std::to_string(ttl_.count())};
}

void NameClaim::Replied(const absl::StatusOr<RedisReply>& reply,
                        std::chrono::steady_clock::time_point now) {
  if (!reply.ok()) return;
  // Nothing there (the first run of the name, or a Redis that lost its keys) is no other run.
  bool other = written_ && !reply->nil() && reply->str != run_;
  written_ = true;
  if (other) other_seen_ = now;
  bool shared = other || (shared_ && now - other_seen_ < ttl_);
  if (shared == shared_) return;
  shared_ = shared;
  if (shared_) {
    spdlog::error(
        "{} \"{}\" is in use by another process too ({} wrote {} since this one's last round): "
        "give each its own, or they overwrite each other's state in Redis",
        what_, name_, reply->str, key_);
  } else {
    spdlog::info("{} \"{}\": no other process writes under it any more", what_, name_);
  }
}

}  // namespace state
