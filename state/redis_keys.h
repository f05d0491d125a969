// The Redis key schema: every key Switchboard writes, built in one place. docs/redis-keys.md
// describes each: type, TTL, writer, readers. All keys start with the configured prefix
// (default "sb:").
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace state {

class RedisKeys {
 public:
  explicit RedisKeys(std::string prefix) : prefix_(std::move(prefix)) {}

  // STRING backend name; TTL sticky_ttl_s, extended while the client is connected.
  std::string Sticky(std::string_view pool, std::string_view client_id) const {
    return fmt::format("{}sticky:{}:{}", prefix_, pool, client_id);
  }
  // ZSET proxy instance -> last heartbeat (ms since the epoch, Redis's clock; heartbeat.h).
  std::string Proxies() const { return prefix_ + "proxies"; }
  // HASH "pool/backend" -> active connections of one proxy; TTL a few heartbeats.
  std::string Connections(std::string_view instance) const {
    return fmt::format("{}conns:{}", prefix_, instance);
  }
  // HASH "pool/backend" -> "up" | "down", one proxy's health verdicts; TTL a few heartbeats.
  std::string Health(std::string_view instance) const {
    return fmt::format("{}health:{}", prefix_, instance);
  }
  // HASH "pool/backend" -> "draining=0|1 weight=N": operator changes, no TTL.
  std::string Operator() const { return prefix_ + "operator"; }
  // STRING a random token the first node writes (SET NX): what a node link presents as its
  // CONNECT password, so that only the cluster's nodes may open one. No TTL.
  std::string ClusterSecret() const { return prefix_ + "cluster-secret"; }
  // ZSET broker node name -> last heartbeat (ms since the epoch, Redis's clock; heartbeat.h).
  std::string Nodes() const { return prefix_ + "nodes"; }
  // HASH address -> "HOST:PORT" where the other nodes reach this node, routes-version -> a
  // value that changes with every change of its routes hash; TTL a few heartbeats.
  std::string Node(std::string_view name) const { return fmt::format("{}node:{}", prefix_, name); }
  // HASH filter (or "$share/GROUP/FILTER") -> subscriptions on that node (members, if shared).
  std::string Routes(std::string_view node) const {
    return fmt::format("{}routes:{}", prefix_, node);
  }
  // Pub/sub channel: "NODE\tFIELD\tCOUNT" for every route change (COUNT 0: withdrawn).
  std::string RouteEvents() const { return prefix_ + "route-events"; }
  // HASH topic -> the retained message of the topic, encoded as an MQTT 5 PUBLISH.
  std::string Retained() const { return prefix_ + "retained"; }
  // STRING node name: the node that owns the client id's session; deleted when the session ends.
  std::string Owner(std::string_view client_id) const {
    return fmt::format("{}owner:{}", prefix_, client_id);
  }
  // Pub/sub channel of one node: requests to hand a session over, and the answers to its own.
  std::string NodeEvents(std::string_view node) const {
    return fmt::format("{}node-events:{}", prefix_, node);
  }
  // STRING a session handed from one node to another (session_codec.h); TTL 30 s, read once.
  std::string Handover(std::string_view request) const {
    return fmt::format("{}handover:{}", prefix_, request);
  }

  // STRING a persistent session as its node keeps it (session_codec.h): its subscriptions while
  // connected; everything, with the session's expiry as TTL, once offline.
  std::string DurableSession(std::string_view node, std::string_view client_id) const {
    return fmt::format("{}session:{}:{}", prefix_, node, client_id);
  }
  // LIST the deliveries queued for an offline persistent session since its record was written.
  std::string DurableQueue(std::string_view node, std::string_view client_id) const {
    return fmt::format("{}session-queue:{}:{}", prefix_, node, client_id);
  }
  // SET the client ids of the persistent sessions a node keeps records of.
  std::string NodeSessions(std::string_view node) const {
    return fmt::format("{}sessions:{}", prefix_, node);
  }
  // STRING "RUN ADOPTER": the run of a dead node whose sessions ADOPTER adopts; TTL an hour.
  std::string Adoption(std::string_view node) const {
    return fmt::format("{}adopt:{}", prefix_, node);
  }
  // STRING the run (a random id per process) that last wrote under a name, proxy instance or
  // node (name_claim.h); TTL a few rounds. `kind` is "proxy" or "node".
  std::string NameRun(std::string_view kind, std::string_view name) const {
    return fmt::format("{}run:{}:{}", prefix_, kind, name);
  }

 private:
  std::string prefix_;
};

}  // namespace state
