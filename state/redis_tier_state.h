// The tier state in Redis. Every Report (every 100 ms) is one pipelined round trip:
//
//   MULTI; DEL conns:I; HSET conns:I ...; PEXPIRE conns:I 3000; (the same for health:I); EXEC
//   EVAL heartbeat proxies I 3000          this proxy is alive; the live proxies (heartbeat.h)
//   SET run:proxy:I RUN GET PX 3000        no other proxy is instance I too (name_claim.h)
//   HGETALL operator                       operator changes
// then HGETALL conns:J and health:J of every other live proxy J. A proxy that dies stops
// refreshing: its keys expire and it leaves the live set within three seconds, and its counts
// with it. While Redis is unreachable, Report does nothing and the proxy keeps its last view;
// when Redis returns, the next Report publishes everything again, operator changes made in the
// meantime included, unless another proxy changed the same backend meanwhile: then its change,
// the later one, stands (each replayed change is written only over the value it replaced). A Redis
// that stays connected but answers the rounds with errors (read-only after a failover, out of
// memory, a forbidding ACL) counts as unreachable too once no round has gone through for
// kFailingRounds.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "state/name_claim.h"
#include "state/redis_client.h"
#include "state/redis_keys.h"
#include "state/tier_state.h"

namespace state {

class RedisTierState : public TierState {
 public:
  RedisTierState(std::shared_ptr<RedisClient> client, RedisKeys keys, std::string instance,
                 std::chrono::milliseconds liveness = std::chrono::milliseconds(3000));

  void Report(std::vector<LocalReport> reports) override;
  void SetOperator(const std::string& backend, const OperatorState& state) override;
  bool degraded() const override;
  bool instance_shared() const override { return name_.shared(); }

  // "draining=0 weight=3", and back.
  static std::string EncodeOperator(const OperatorState& s);
  static OperatorState DecodeOperator(std::string_view text);

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kFailingRounds{1000};

  // A round ended: `error` is empty if it went through.
  void RoundEnded(const std::string& error);
  // `read_after`: the operator changes made here before the round's read of the operators.
  void ReadOthers(std::vector<std::string> live, TierView view, uint64_t read_after);

  std::shared_ptr<RedisClient> client_;
  RedisKeys keys_;
  std::string instance_;
  std::chrono::milliseconds liveness_;
  NameClaim name_;
  bool in_flight_ = false;
  Clock::time_point last_round_ok_ = Clock::now();
  bool rounds_failing_ = false;  // since the last round that went through
  // Operator changes not yet confirmed by Redis (made while it was unreachable, say), each with
  // the tier's value it replaced as this proxy last read it (none: no record).
  struct Unsent {
    OperatorState state;
    std::optional<std::string> replaced;
  };
  absl::flat_hash_map<std::string, Unsent> unsent_operators_;
  // The tier's operator records as of the last view.
  absl::flat_hash_map<std::string, std::string> seen_operators_;
  // Writes an unsent change where the tier still has the value it replaced.
  void Replay(const std::string& backend, const Unsent& change);
  // The change to `backend` is settled, written or `overtaken` by another proxy's: no longer sent
  // again.
  void Settled(const std::string& backend, const OperatorState& state, bool overtaken);
  // Operator changes made here, numbered, until a round's read has seen them: a round whose read
  // went out before a change answers with the state before it, which must not undo the change
  // for a round.
  uint64_t operator_changes_ = 0;
  absl::flat_hash_map<std::string, std::pair<uint64_t, OperatorState>> recent_operators_;
};

}  // namespace state
