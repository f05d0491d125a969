// RedisTierState: publish this proxy's state, read the others', in one pipelined round.
#include "state/redis_tier_state.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <memory>

#include "state/heartbeat.h"
#include "state/replace_field.h"

namespace state {

namespace {

// A reply counter: runs `done` when every reply of a round has arrived, with the first error
// (empty if none).
struct Round {
  size_t waiting = 0;
  std::string error;
  std::function<void(const std::string& error)> done;
  void Arrived(const absl::StatusOr<RedisReply>& r) {
    if (!r.ok() && error.empty()) error = std::string(r.status().message());
    if (--waiting == 0) done(error);
  }
};

}  // namespace

RedisTierState::RedisTierState(std::shared_ptr<RedisClient> client, RedisKeys keys,
                               std::string instance, std::chrono::milliseconds liveness)
    : client_(std::move(client)),
      keys_(std::move(keys)),
      instance_(std::move(instance)),
      liveness_(liveness),
      name_("proxy instance", instance_, keys_.NameRun("proxy", instance_), liveness_) {}

std::string RedisTierState::EncodeOperator(const OperatorState& s) {
  std::string out = s.draining ? "draining=1" : "draining=0";
  if (s.weight) out += " weight=" + std::to_string(*s.weight);
  return out;
}

OperatorState RedisTierState::DecodeOperator(std::string_view text) {
  OperatorState s;
  s.draining = text.find("draining=1") != std::string_view::npos;
  size_t w = text.find("weight=");
  if (w != std::string_view::npos) {
    std::string_view digits = text.substr(w + 7);
    uint32_t weight = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), weight);
    if (ec == std::errc()) s.weight = weight;
  }
  return s;
}

bool RedisTierState::degraded() const {
  return !client_->connected() || Clock::now() - last_round_ok_ >= kFailingRounds;
}

void RedisTierState::RoundEnded(const std::string& error) {
  in_flight_ = false;
  if (error.empty()) {
    last_round_ok_ = Clock::now();
    rounds_failing_ = false;
    return;
  }
  // Logged once per run of failures: a lost connection says so itself, an error reply not.
  if (!rounds_failing_ && client_->connected()) spdlog::warn("shared state: {}", error);
  rounds_failing_ = true;
}

void RedisTierState::Report(std::vector<LocalReport> reports) {
  if (in_flight_ || !client_->connected()) return;  // degraded: keep the last view
  in_flight_ = true;
  for (const auto& [backend, change] : unsent_operators_)
    Replay(backend, change);
  std::string ttl = std::to_string(liveness_.count());
  std::vector<std::string> conns = {"HSET", keys_.Connections(instance_)};
  std::vector<std::string> health = {"HSET", keys_.Health(instance_)};
  for (const LocalReport& r : reports) {
    conns.insert(conns.end(), {r.backend, std::to_string(r.active)});
    health.insert(health.end(), {r.backend, r.up ? "up" : "down"});
  }
  auto ignore = [](absl::StatusOr<RedisReply>) {};
  client_->Command({"MULTI"}, ignore);
  client_->Command({"DEL", keys_.Connections(instance_), keys_.Health(instance_)}, ignore);
  if (!reports.empty()) {
    client_->Command(std::move(conns), ignore);
    client_->Command(std::move(health), ignore);
  }
  client_->Command({"PEXPIRE", keys_.Connections(instance_), ttl}, ignore);
  client_->Command({"PEXPIRE", keys_.Health(instance_), ttl}, ignore);
  auto view = std::make_shared<TierView>();
  auto live = std::make_shared<std::vector<std::string>>();
  auto round = std::make_shared<Round>();
  round->waiting = 3;
  round->done = [this, view, live, read_after = operator_changes_](const std::string& error) {
    if (!error.empty()) return RoundEnded(error);
    ReadOthers(std::move(*live), std::move(*view), read_after);
  };
  // A refused write inside aborts the transaction: EXEC answers with an error.
  client_->Command({"EXEC"}, [round](absl::StatusOr<RedisReply> r) { round->Arrived(r); });
  client_->Command(HeartbeatCommand(keys_.Proxies(), instance_, liveness_),
                   [this, live, round](absl::StatusOr<RedisReply> r) {
                     if (r.ok()) {
                       for (const RedisReply& e : r->elements) {
                         if (e.str != instance_) live->push_back(e.str);
                       }
                     }
                     round->Arrived(r);
                   });
  client_->Command(name_.Command(), [this](absl::StatusOr<RedisReply> r) { name_.Replied(r); });
  client_->Command({"HGETALL", keys_.Operator()},
                   [this, view, round](absl::StatusOr<RedisReply> r) {
                     if (r.ok()) {
                       seen_operators_.clear();
                       for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
                         const std::string& key = r->elements[i].str;
                         view->operators[key] = DecodeOperator(r->elements[i + 1].str);
                         seen_operators_[key] = r->elements[i + 1].str;
                       }
                     }
                     round->Arrived(r);
                   });
}

void RedisTierState::ReadOthers(std::vector<std::string> live, TierView view, uint64_t read_after) {
  view.live_proxies = static_cast<uint32_t>(live.size()) + 1;
  auto shared = std::make_shared<TierView>(std::move(view));
  auto round = std::make_shared<Round>();
  round->waiting = 2 * live.size();
  round->done = [this, shared, read_after](const std::string& error) {
    RoundEnded(error);
    if (!error.empty()) return;
    // The read came before these changes, on the same connection: they are newer than it.
    absl::erase_if(recent_operators_, [&](const auto& entry) {
      const auto& [number, state] = entry.second;
      if (number <= read_after) return true;
      shared->operators[entry.first] = state;
      return false;
    });
    if (on_view) on_view(*shared);
  };
  if (live.empty()) return round->done("");
  for (const std::string& id : live) {
    client_->Command({"HGETALL", keys_.Connections(id)},
                     [shared, round](absl::StatusOr<RedisReply> r) {
                       if (r.ok()) {
                         for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
                           int64_t n = 0;
                           const std::string& v = r->elements[i + 1].str;
                           std::from_chars(v.data(), v.data() + v.size(), n);
                           shared->backends[r->elements[i].str].remote_active += n;
                         }
                       }
                       round->Arrived(r);
                     });
    client_->Command({"HGETALL", keys_.Health(id)}, [shared, round](absl::StatusOr<RedisReply> r) {
      if (r.ok()) {
        for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
          if (r->elements[i + 1].str == "down") ++shared->backends[r->elements[i].str].down_votes;
        }
      }
      round->Arrived(r);
    });
  }
}

void RedisTierState::SetOperator(const std::string& backend, const OperatorState& state) {
  // Unsent until Redis confirms it; a change made over an unsent one replaced what that one did.
  auto [it, first] = unsent_operators_.try_emplace(backend);
  if (first) {
    auto seen = seen_operators_.find(backend);
    if (seen != seen_operators_.end()) it->second.replaced = seen->second;
  }
  it->second.state = state;
  recent_operators_[backend] = {++operator_changes_, state};
  // Made now: the last change wins, whatever the tier had.
  client_->Command({"HSET", keys_.Operator(), backend, EncodeOperator(state)},
                   [this, backend, state](absl::StatusOr<RedisReply> r) {
                     if (r.ok()) Settled(backend, state, /*overtaken=*/false);
                   });
}

void RedisTierState::Replay(const std::string& backend, const Unsent& change) {
  // Made while Redis was unreachable (or refused it): written only if the tier still has what
  // it replaced. Otherwise another proxy changed the backend since, and its change is the later.
  OperatorState state = change.state;
  client_->Command(ReplaceFieldCommand(keys_.Operator(), backend, change.replaced.value_or(""),
                                       EncodeOperator(state)),
                   [this, backend, state](absl::StatusOr<RedisReply> r) {
                     if (!r.ok()) return;
                     bool overtaken = r->integer == 0;
                     if (overtaken) {
                       spdlog::warn(
                           "shared state: the operator change to {} made while Redis was "
                           "unreachable gives way to a later one from another proxy",
                           backend);
                     }
                     Settled(backend, state, overtaken);
                   });
}

void RedisTierState::Settled(const std::string& backend, const OperatorState& state,
                             bool overtaken) {
  auto it = unsent_operators_.find(backend);
  if (it == unsent_operators_.end() || !(it->second.state == state)) return;  // changed again
  unsent_operators_.erase(it);
  // Written, it stays laid over views read before it (recent_operators_). Overtaken, the next
  // view's record stands, not this proxy's change.
  if (!overtaken) return;
  auto recent = recent_operators_.find(backend);
  if (recent != recent_operators_.end() && recent->second.second == state) {
    recent_operators_.erase(recent);
  }
}

}  // namespace state
