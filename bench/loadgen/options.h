// The load generator's command line (see --help).
#pragma once

#include <sys/types.h>

#include <boost/asio/ip/tcp.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mqtt/packet.h"

namespace loadgen {

enum class Scenario { kPairs, kLoopback, kFanIn, kFanOut, kShared, kConnect, kIdle };

struct Options {
  Scenario scenario = Scenario::kPairs;
  std::string scenario_name = "pairs";
  std::vector<boost::asio::ip::tcp::endpoint> targets;  // clients spread round robin
  // Publishers of the pub/sub scenarios spread over these instead, if any: subscribers on one
  // node and publishers on another measure a cluster's cross-node path.
  std::vector<boost::asio::ip::tcp::endpoint> publisher_targets;
  uint32_t clients = 16;     // pairs: pairs; fan-in/shared: publishers; fan-out: subscribers;
                             // connect: concurrent connect loops; idle: connections
  uint32_t subscribers = 0;  // shared: members of the group (0: as many as publishers)
  mqtt::QoS qos = mqtt::QoS::k0;
  uint32_t payload_bytes = 64;
  double rate = 0;      // messages per second in total; 0: closed loop
  uint32_t window = 8;  // closed loop: messages in flight end to end per publisher
  double duration_s = 10;
  double warmup_s = 2;
  double drain_s = 5;  // after the run, how long to wait for messages still in flight
  mqtt::Version version = mqtt::Version::k5;
  uint16_t keep_alive_s = 60;
  bool persistent = false;
  bool fresh_ids = false;  // connect: a new client id at every connection, not one per loop
  std::string client_prefix = "sb-bench";
  std::string topic_prefix = "bench";
  std::string json_path;
  uint32_t threads = 1;
  uint32_t connect_concurrency = 256;  // connections being opened at once
  std::vector<pid_t> watch_pids;
  bool quiet = false;  // no progress line
};

// Parses argv. A help request is reported as a status of kCancelled with the help text.
[[nodiscard]] absl::StatusOr<Options> ParseOptions(int argc, char** argv);

}  // namespace loadgen
