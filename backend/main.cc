// switchboard-broker: an MQTT 3.1.1 and 5.0 broker node.
//
//   switchboard-broker --config conf/broker.toml [--listen HOST:PORT] [--admin HOST:PORT]
//                      [--node NAME] [--redis URL] [--advertise HOST:PORT] [--threads N]
//                      [--log-level LEVEL]
//
// Flags override the file. A configuration error names the file (or flag), the key and what was
// expected, and exits with status 2 before anything is bound; a failure to start exits with 1. A
// cluster node that learns the other nodes took it for gone and adopted its sessions exits with
// 75 (Cluster::kFencedExitStatus): restart it.
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <cstdint>
#include <iostream>
#include <string>

#include "backend/broker.h"
#include "backend/config.h"
#include "base/logging.h"
#include "state/redis_client.h"

namespace po = boost::program_options;

namespace {

constexpr int kConfigError = 2;
constexpr int kStartError = 1;
constexpr int64_t kMaxThreads = 256;  // as broker.threads in the file

int Fail(int code, std::string_view message) {
  std::cerr << "switchboard-broker: " << message << "\n";
  return code;
}

// Applies an address flag; false with a message when it does not parse.
bool OverrideAddress(const po::variables_map& vm, const char* flag, base::HostPort& target,
                     std::string& error) {
  if (!vm.count(flag)) return true;
  absl::StatusOr<base::HostPort> parsed = base::ParseHostPort(vm[flag].as<std::string>());
  if (!parsed.ok()) {
    error = std::string("--") + flag + ": " + std::string(parsed.status().message());
    return false;
  }
  target = *parsed;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description flags("switchboard-broker: an MQTT 3.1.1 and 5.0 broker node\n\nOptions");
  // clang-format off: one option per line reads best
  flags.add_options()("help,h", "print this help and exit")(
      "config,c", po::value<std::string>(),
      "TOML configuration file (see conf/broker.toml); without it, built-in defaults")(
      "listen", po::value<std::string>(),
      "MQTT listener, HOST:PORT (default 127.0.0.1:1883; port 0 picks a free port)")(
      "admin", po::value<std::string>(),
      "admin HTTP listener for /healthz and /metrics, HOST:PORT (default: none)")(
      "node", po::value<std::string>(), "this node's name, unique in a cluster")(
      "redis", po::value<std::string>(),
      "join the cluster of the nodes sharing this Redis, "
      "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (default: none, a single broker)")(
      "advertise", po::value<std::string>(),
      "HOST:PORT where the other nodes reach this one (default: the listen address)")(
      "threads", po::value<int64_t>(), "I/O threads, 0 to 256; 0 = one per core (default 0)")(
      "log-level", po::value<std::string>(), "trace, debug, info, warn, error or off");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, flags), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return Fail(kConfigError, std::string(e.what()) + " (see --help)");
  }
  if (vm.count("help")) {
    std::cout << flags << "\n";
    return 0;
  }

  backend::BrokerConfig config;
  if (vm.count("config")) {
    absl::StatusOr<backend::BrokerConfig> loaded =
        backend::LoadBrokerConfig(vm["config"].as<std::string>());
    if (!loaded.ok()) return Fail(kConfigError, std::string(loaded.status().message()));
    config = std::move(*loaded);
  }
  std::string error;
  if (!OverrideAddress(vm, "listen", config.listen, error)) return Fail(kConfigError, error);
  if (vm.count("admin")) {
    config.admin.emplace();
    if (!OverrideAddress(vm, "admin", *config.admin, error)) return Fail(kConfigError, error);
  }
  // Flags are held to the same ranges as the keys they override (see config.cc): parsed as an
  // unsigned type, "--threads -1" would wrap to four billion threads.
  if (vm.count("node")) {
    config.node = vm["node"].as<std::string>();
    if (config.node.empty()) return Fail(kConfigError, "--node: expected a non-empty name");
  }
  if (vm.count("threads")) {
    int64_t threads = vm["threads"].as<int64_t>();
    if (threads < 0 || threads > kMaxThreads) {
      return Fail(kConfigError, "--threads: expected an integer from 0 to " +
                                    std::to_string(kMaxThreads) + ", got " +
                                    std::to_string(threads));
    }
    config.threads = static_cast<uint32_t>(threads);
  }
  if (vm.count("redis")) {
    config.cluster.redis_url = vm["redis"].as<std::string>();
    absl::StatusOr<state::RedisOptions> url = state::ParseRedisUrl(config.cluster.redis_url);
    if (!url.ok()) return Fail(kConfigError, "--redis: " + std::string(url.status().message()));
  }
  if (vm.count("advertise")) {
    config.cluster.advertise.emplace();
    if (!OverrideAddress(vm, "advertise", *config.cluster.advertise, error)) {
      return Fail(kConfigError, error);
    }
  }
  if (vm.count("log-level")) config.log_level = vm["log-level"].as<std::string>();
  if (absl::Status s = base::InitLogging("broker", config.log_level); !s.ok()) {
    return Fail(kConfigError, std::string(s.message()));
  }

  backend::Broker broker(std::move(config));
  if (absl::Status s = broker.Start(); !s.ok()) {
    return Fail(kStartError, std::string(s.message()));
  }
  broker.Run();
  spdlog::info("stopped");
  return 0;
}
