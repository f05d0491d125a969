// switchboard: the MQTT load-balancing proxy.
//
//   switchboard --config conf/switchboard.toml [--check] [--log-level LEVEL]
//
// --check validates the file, resolves its addresses and exits: 0 when valid, 2 with the error
// otherwise. A configuration error names the file, the line, the key and what was expected, and
// exits 2 before anything is bound; a listener that cannot be bound exits 1. SIGHUP reloads the
// file; SIGTERM or SIGINT stops (gracefully with [proxy] stop_grace_ms, stop_spread_ms).
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <iostream>

#include "base/logging.h"
#include "net/listen.h"
#include "proxy/proxy.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  po::options_description flags("switchboard: the MQTT load-balancing proxy\n\nOptions");
  flags.add_options()("help,h", "print this help and exit")(
      "config,c", po::value<std::string>(),
      "TOML configuration file (required; see "
      "conf/switchboard.toml, docs/configuration.md)")(
      "check", "validate the configuration and exit: 0 valid, 2 invalid")(
      "log-level", po::value<std::string>(), "trace, debug, info, warn, error or off");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, flags), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "switchboard: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << flags << "\n";
    return 0;
  }
  if (!vm.count("config")) {
    std::cerr << "switchboard: --config FILE is required (see --help)\n";
    return 2;
  }
  std::string path = vm["config"].as<std::string>();
  absl::StatusOr<proxy::ProxyConfig> config = proxy::LoadProxyConfig(path);
  if (!config.ok()) {
    std::cerr << "switchboard: " << config.status().message() << "\n";
    return 2;
  }
  if (vm.count("check")) {
    absl::Status s = proxy::ResolveConfig(*config).status();
    if (s.ok() && config->admin) {  // resolved by the admin server at start
      if (absl::StatusOr<boost::asio::ip::tcp::endpoint> admin = net::Resolve(*config->admin);
          !admin.ok()) {
        s = absl::InvalidArgumentError("proxy.admin: " + std::string(admin.status().message()));
      }
    }
    if (!s.ok()) {
      std::cerr << "switchboard: " << path << ": " << s.message() << "\n";
      return 2;
    }
    std::cout << path << ": valid (" << config->listeners.size() << " listeners, "
              << config->pools.size() << " pools)\n";
    return 0;
  }
  if (vm.count("log-level")) config->log_level = vm["log-level"].as<std::string>();
  if (absl::Status s = base::InitLogging("switchboard", config->log_level); !s.ok()) {
    std::cerr << "switchboard: " << s.message() << "\n";
    return 2;
  }
  proxy::Proxy proxy(path, std::move(*config));
  if (absl::Status s = proxy.Start(); !s.ok()) {
    // An address that does not resolve is the file's error, as --check reports it; one that
    // cannot be bound is the machine's.
    if (absl::IsInvalidArgument(s)) {
      std::cerr << "switchboard: " << path << ": " << s.message() << "\n";
      return 2;
    }
    std::cerr << "switchboard: " << s.message() << "\n";
    return 1;
  }
  proxy.Run();
  spdlog::info("stopped");
  return 0;
}
