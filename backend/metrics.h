// The broker's counters. Each shard has its own block and is its only writer, so counting a
// message is a relaxed load and store on a cache line no other thread writes; /metrics sums the
// blocks. Labels with a fixed set of values are arrays indexed by enum.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace backend {

// A counter or gauge with one writing thread and any number of readers.
class Stat {
 public:
  void Add(int64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Why a message was not delivered to a session.
enum class DropReason : uint8_t {
  kQueueFull,             // the session's queue was at max_queued_messages
  kOfflineQos0,           // QoS 0 for a session without connection
  kExpired,               // Message Expiry Interval passed while queued
  kTooLarge,              // over the client's Maximum Packet Size
  kNotAuthorized,         // publish denied by an access rule
  kPayloadFormatInvalid,  // Payload Format Indicator 1 but not UTF-8
  kMalformedForward,      // from a node link, without the link's properties (another build)
  kCount
};

// Why a connection was refused before it became a session.
enum class RejectReason : uint8_t {
  kMaxConnections,
  kConnectTimeout,
  kMalformedConnect,  // the first packet was not a valid CONNECT
  kUnsupportedVersion,
  kClientIdRejected,
  kKeepAliveRejected,
  kBadAuthentication,
  kProxyProtocol,  // proxy_protocol = true and no valid PROXY header
  kNotANode,       // a node link's client id without the cluster's secret
  kCount
};

struct ShardMetrics {
  Stat connections;                       // gauge: attached client connections
  Stat connections_accepted;              // TCP connections accepted
  Stat sessions;                          // gauge: sessions, with or without connection
  Stat subscriptions;                     // gauge: subscriptions of this shard's sessions
  std::array<Stat, 3> messages_received;  // by QoS
  std::array<Stat, 3> messages_sent;      // by QoS
  Stat bytes_received;
  Stat bytes_sent;
  Stat messages_unrouted;             // published with no matching subscription; redirected to none
  Stat messages_forwarded;            // copies sent to other nodes
  Stat messages_received_from_nodes;  // forwards received from other nodes
  Stat messages_redirected;           // sent on to the node a session moved to
  Stat links_up;                      // gauge: links to other nodes connected
  Stat publishers_held_back;          // times a client was not read: a link or shard congested
  std::array<Stat, static_cast<size_t>(DropReason::kCount)> dropped;
  std::array<Stat, static_cast<size_t>(RejectReason::kCount)> rejected;
  std::array<Stat, 256> disconnects;  // server-sent or forced closes, by reason code

  void Drop(DropReason r, int64_t n = 1) { dropped[static_cast<size_t>(r)].Add(n); }
  void Reject(RejectReason r) { rejected[static_cast<size_t>(r)].Add(); }
};

// Metric values of the whole broker, rendered in the Prometheus text format.
struct BrokerTotals {
  int64_t retained = 0;
  int64_t shard_queue_bytes = 0;  // handed from one shard to another, not yet taken
  bool accepting = true;
  // The cluster, when the node is in one.
  bool clustered = false;
  bool redis_up = false;
  int64_t nodes = 0;              // live, this one included
  bool node_name_shared = false;  // another live node has this one's name (name_claim.h)
  int64_t local_routes = 0;
  int64_t remote_routes = 0;
  int64_t sessions_handed_out = 0;  // to other nodes that took their client ids over
  int64_t sessions_taken_in = 0;    // from other nodes
  int64_t sessions_restored = 0;    // from the records of nodes that left
};
std::string RenderMetrics(const std::vector<const ShardMetrics*>& shards,
                          const BrokerTotals& totals);

}  // namespace backend
