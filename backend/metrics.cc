// Rendering /metrics: sum the shards' blocks, name every label value.
#include "backend/metrics.h"

#include <string_view>

#include "base/metrics_text.h"
#include "mqtt/reason_code.h"

namespace backend {
namespace {

std::string_view DropName(size_t i) {
  static constexpr std::string_view kNames[] = {
      "queue_full",     "offline_qos0",           "expired",          "too_large",
      "not_authorized", "payload_format_invalid", "malformed_forward"};
  return kNames[i];
}

std::string_view RejectName(size_t i) {
  static constexpr std::string_view kNames[] = {
      "max_connections",     "connect_timeout",    "malformed_connect",
      "unsupported_version", "client_id_rejected", "keep_alive_rejected",
      "bad_authentication",  "proxy_protocol",     "not_a_node"};
  return kNames[i];
}

}  // namespace

std::string RenderMetrics(const std::vector<const ShardMetrics*>& shards,
                          const BrokerTotals& totals) {
  auto sum = [&](auto field) {
    int64_t total = 0;
    for (const ShardMetrics* s : shards)
      total += field(*s).value();
    return static_cast<double>(total);
  };
  base::MetricsText m;
  m.Family("sb_broker_up", "gauge", "1 while the broker accepts connections.");
  m.Sample("sb_broker_up", totals.accepting ? 1 : 0);
  m.Family("sb_broker_connections", "gauge",
           "Open MQTT client connections (other nodes' links not included).");
  m.Sample("sb_broker_connections", sum([](auto& s) -> auto& { return s.connections; }));
  m.Family("sb_broker_connections_accepted_total", "counter", "TCP connections accepted.");
  m.Sample("sb_broker_connections_accepted_total",
           sum([](auto& s) -> auto& { return s.connections_accepted; }));
  m.Family("sb_broker_connections_rejected_total", "counter",
           "Connections refused before becoming a session, by reason.");
  for (size_t i = 0; i < static_cast<size_t>(RejectReason::kCount); ++i) {
    m.Sample("sb_broker_connections_rejected_total",
             sum([i](auto& s) -> auto& { return s.rejected[i]; }), {{"reason", RejectName(i)}});
  }
  m.Family("sb_broker_sessions", "gauge",
           "Client sessions, connected or not (other nodes' links not included).");
  m.Sample("sb_broker_sessions", sum([](auto& s) -> auto& { return s.sessions; }));
  m.Family("sb_broker_subscriptions", "gauge", "Subscriptions of all sessions.");
  m.Sample("sb_broker_subscriptions", sum([](auto& s) -> auto& { return s.subscriptions; }));
  m.Family("sb_broker_retained_messages", "gauge", "Retained messages stored.");
  m.Sample("sb_broker_retained_messages", static_cast<double>(totals.retained));

  static constexpr std::string_view kQos[] = {"0", "1", "2"};
  m.Family("sb_broker_messages_received_total", "counter", "PUBLISH packets received, by QoS.");
  for (size_t q = 0; q < 3; ++q) {
    m.Sample("sb_broker_messages_received_total",
             sum([q](auto& s) -> auto& { return s.messages_received[q]; }), {{"qos", kQos[q]}});
  }
  m.Family("sb_broker_messages_sent_total", "counter", "PUBLISH packets sent, by QoS.");
  for (size_t q = 0; q < 3; ++q) {
    m.Sample("sb_broker_messages_sent_total",
             sum([q](auto& s) -> auto& { return s.messages_sent[q]; }), {{"qos", kQos[q]}});
  }
  m.Family("sb_broker_bytes_received_total", "counter", "Bytes read from clients.");
  m.Sample("sb_broker_bytes_received_total",
           sum([](auto& s) -> auto& { return s.bytes_received; }));
  m.Family("sb_broker_bytes_sent_total", "counter", "Bytes written to clients.");
  m.Sample("sb_broker_bytes_sent_total", sum([](auto& s) -> auto& { return s.bytes_sent; }));
  m.Family("sb_broker_messages_unrouted_total", "counter",
           "Messages published with no matching subscription.");
  m.Sample("sb_broker_messages_unrouted_total",
           sum([](auto& s) -> auto& { return s.messages_unrouted; }));
  m.Family("sb_broker_messages_dropped_total", "counter",
           "Deliveries dropped instead of sent, by reason.");
  for (size_t i = 0; i < static_cast<size_t>(DropReason::kCount); ++i) {
    m.Sample("sb_broker_messages_dropped_total",
             sum([i](auto& s) -> auto& { return s.dropped[i]; }), {{"reason", DropName(i)}});
  }
  m.Family("sb_broker_shard_queue_bytes", "gauge",
           "Bytes one thread has handed to another and that it has not taken yet (each delivery "
           "counts its message and its entry).");
  m.Sample("sb_broker_shard_queue_bytes", static_cast<double>(totals.shard_queue_bytes));
  m.Family("sb_broker_publishers_held_back_total", "counter",
           "Times a client stopped being read because a node link or another thread its "
           "messages feed was congested.");
  m.Sample("sb_broker_publishers_held_back_total",
           sum([](auto& s) -> auto& { return s.publishers_held_back; }));
  if (totals.clustered) {
    m.Family("sb_broker_cluster_redis_up", "gauge", "1 while the cluster's Redis answers.");
    m.Sample("sb_broker_cluster_redis_up", totals.redis_up ? 1 : 0);
    m.Family("sb_broker_cluster_node_name_shared", "gauge",
             "1 while another node of the cluster has this one's name too: they overwrite each "
             "other's routes and sessions.");
    m.Sample("sb_broker_cluster_node_name_shared", totals.node_name_shared ? 1 : 0);
    m.Family("sb_broker_cluster_nodes", "gauge", "Live nodes of the cluster, this one included.");
    m.Sample("sb_broker_cluster_nodes", static_cast<double>(totals.nodes));
    m.Family("sb_broker_cluster_links_up", "gauge",
             "Links to other nodes connected (one per shard and node).");
    m.Sample("sb_broker_cluster_links_up", sum([](auto& s) -> auto& { return s.links_up; }));
    m.Family("sb_broker_cluster_routes", "gauge",
             "Route table: filters this node announces, and the other nodes' routes it knows.");
    m.Sample("sb_broker_cluster_routes", static_cast<double>(totals.local_routes),
             {{"kind", "local"}});
    m.Sample("sb_broker_cluster_routes", static_cast<double>(totals.remote_routes),
             {{"kind", "remote"}});
    m.Family("sb_broker_cluster_sessions_handed_over_total", "counter",
             "Sessions handed to the node that took their client id over (out), or from (in).");
    m.Sample("sb_broker_cluster_sessions_handed_over_total",
             static_cast<double>(totals.sessions_handed_out), {{"direction", "out"}});
    m.Sample("sb_broker_cluster_sessions_handed_over_total",
             static_cast<double>(totals.sessions_taken_in), {{"direction", "in"}});
    m.Family("sb_broker_cluster_sessions_restored_total", "counter",
             "Sessions restored from the Redis records of nodes that left (claimed or adopted).");
    m.Sample("sb_broker_cluster_sessions_restored_total",
             static_cast<double>(totals.sessions_restored));
    m.Family("sb_broker_messages_forwarded_total", "counter", "Copies sent to other nodes.");
    m.Sample("sb_broker_messages_forwarded_total",
             sum([](auto& s) -> auto& { return s.messages_forwarded; }));
    m.Family("sb_broker_messages_received_from_nodes_total", "counter",
             "Messages other nodes forwarded to this one.");
    m.Sample("sb_broker_messages_received_from_nodes_total",
             sum([](auto& s) -> auto& { return s.messages_received_from_nodes; }));
    m.Family("sb_broker_messages_redirected_total", "counter",
             "Deliveries to sessions that moved to another node, sent on to that node.");
    m.Sample("sb_broker_messages_redirected_total",
             sum([](auto& s) -> auto& { return s.messages_redirected; }));
  }
  m.Family("sb_broker_disconnects_total", "counter",
           "Connections closed by the broker or by error, by MQTT reason code.");
  for (size_t i = 0; i < 256; ++i) {
    double v = sum([i](auto& s) -> auto& { return s.disconnects[i]; });
    if (v == 0) continue;
    m.Sample("sb_broker_disconnects_total", v,
             {{"reason", mqtt::ReasonName(static_cast<mqtt::ReasonCode>(i))}});
  }
  return std::move(m).Take();
}

}  // namespace backend
