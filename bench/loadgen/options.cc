// Command-line parsing with Boost.Program_options.
#include "bench/loadgen/options.h"

#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <sstream>

#include "base/absl_format.h"
#include "base/host_port.h"
#include "net/listen.h"

namespace loadgen {

namespace po = boost::program_options;

absl::StatusOr<Options> ParseOptions(int argc, char** argv) {
  Options o;
  std::vector<std::string> targets, publisher_targets;
  std::string qos, mqtt_version = "5";
  po::options_description d(
      "switchboard-bench: MQTT load generator\n\n"
      "  switchboard-bench SCENARIO [options]\n\n"
      "Scenarios: pairs (N publisher/subscriber pairs, one topic each), loopback (N clients each\n"
      "subscribed to its own topic and publishing to it: through a proxy in front of several\n"
      "brokers, every message crosses the proxy twice whatever broker a client lands on), fan-in\n"
      "(N publishers, one subscriber), fan-out (one publisher, N subscribers), shared (N\n"
      "publishers into a shared subscription group), connect (CONNECT/CONNACK/DISCONNECT\n"
      "cycles), idle (hold N idle connections, report the memory of the --watch-pid processes)\n\n"
      "Options");
  // clang-format off: one option per line reads best
  d.add_options()("help,h", "print this help")("scenario", po::value<std::string>(&o.scenario_name),
                                               "the scenario (also positional)")(
      "target", po::value<std::vector<std::string>>(&targets),
      "HOST:PORT to connect to; repeat to spread clients round robin (default 127.0.0.1:1883)")(
      "publisher-target", po::value<std::vector<std::string>>(&publisher_targets),
      "HOST:PORT for the publishers only (pub/sub scenarios; repeatable; default: --target)")(
      "clients", po::value<uint32_t>(&o.clients)->default_value(o.clients),
      "pairs, clients, publishers, subscribers, connect loops or idle connections, by scenario")(
      "subscribers", po::value<uint32_t>(&o.subscribers)->default_value(0),
      "shared: group members (0 = as many as publishers)")(
      "qos", po::value<std::string>(&qos)->default_value("0"), "0, 1 or 2")(
      "payload", po::value<uint32_t>(&o.payload_bytes)->default_value(o.payload_bytes),
      "payload bytes (at least 24: sequence and timestamp)")(
      "rate", po::value<double>(&o.rate)->default_value(0),
      "messages per second in total; 0 = as fast as the window allows (closed loop)")(
      "window", po::value<uint32_t>(&o.window)->default_value(o.window),
      "closed loop: messages in flight end to end per publisher")(
      "duration", po::value<double>(&o.duration_s)->default_value(o.duration_s),
      "measured seconds")("warmup", po::value<double>(&o.warmup_s)->default_value(o.warmup_s),
                          "seconds of load before measuring")(
      "drain", po::value<double>(&o.drain_s)->default_value(o.drain_s),
      "seconds to wait for messages in flight at the end")(
      "mqtt", po::value<std::string>(&mqtt_version)->default_value("5"), "3.1.1 or 5")(
      "keepalive", po::value<uint16_t>(&o.keep_alive_s)->default_value(o.keep_alive_s),
      "keep alive seconds")("clean", "clean sessions (default)")(
      "persistent", "persistent sessions (clean start 0, session expiry 300 s in 5.0)")(
      "fresh-ids",
      "connect: a new client id at every connection (each a new client to a "
      "sticky table), not one per loop (returning clients)")(
      "client-prefix", po::value<std::string>(&o.client_prefix)->default_value(o.client_prefix),
      "client id prefix")("topic-prefix",
                          po::value<std::string>(&o.topic_prefix)->default_value(o.topic_prefix),
                          "topic prefix")("json", po::value<std::string>(&o.json_path),
                                          "write every figure as JSON to this file")(
      "threads", po::value<uint32_t>(&o.threads)->default_value(o.threads),
      "load generator threads")(
      "connect-concurrency",
      po::value<uint32_t>(&o.connect_concurrency)->default_value(o.connect_concurrency),
      "connections being opened at once")("watch-pid", po::value<std::vector<pid_t>>(&o.watch_pids),
                                          "report CPU and memory of this process (repeatable)")(
      "quiet,q", "no progress line");
  // clang-format on
  po::positional_options_description positional;
  positional.add("scenario", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(d).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return absl::InvalidArgumentError(fmt::format("{} (see --help)", e.what()));
  }
  if (vm.count("help")) {
    std::ostringstream help;
    help << d;
    return absl::CancelledError(help.str());
  }
  o.quiet = vm.count("quiet") > 0;
  o.persistent = vm.count("persistent") > 0;
  o.fresh_ids = vm.count("fresh-ids") > 0;
  if (o.persistent && vm.count("clean")) {
    return absl::InvalidArgumentError("--clean and --persistent exclude each other");
  }
  static const std::pair<const char*, Scenario> kScenarios[] = {
      {"pairs", Scenario::kPairs},   {"loopback", Scenario::kLoopback},
      {"fan-in", Scenario::kFanIn},  {"fan-out", Scenario::kFanOut},
      {"shared", Scenario::kShared}, {"connect", Scenario::kConnect},
      {"idle", Scenario::kIdle}};
  bool known = false;
  for (auto [name, s] : kScenarios) {
    if (o.scenario_name == name) {
      o.scenario = s;
      known = true;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(fmt::format(
        "scenario: expected pairs, loopback, fan-in, fan-out, shared, connect or idle, got \"{}\"",
        o.scenario_name));
  }
  if (qos != "0" && qos != "1" && qos != "2") {
    return absl::InvalidArgumentError(fmt::format("--qos: expected 0, 1 or 2, got \"{}\"", qos));
  }
  o.qos = static_cast<mqtt::QoS>(qos[0] - '0');
  if (mqtt_version == "3.1.1" || mqtt_version == "311") {
    o.version = mqtt::Version::k311;
  } else if (mqtt_version == "5" || mqtt_version == "5.0") {
    o.version = mqtt::Version::k5;
  } else {
    return absl::InvalidArgumentError(
        fmt::format("--mqtt: expected 3.1.1 or 5, got \"{}\"", mqtt_version));
  }
  if (o.payload_bytes < 24) {
    return absl::InvalidArgumentError("--payload: at least 24 bytes (sequence and timestamp)");
  }
  if (o.clients == 0 || o.window == 0 || o.threads == 0 || o.duration_s <= 0) {
    return absl::InvalidArgumentError("--clients, --window, --threads and --duration must be > 0");
  }
  if (targets.empty()) targets.push_back("127.0.0.1:1883");
  auto resolve = [](const std::vector<std::string>& in, std::string_view flag,
                    std::vector<boost::asio::ip::tcp::endpoint>& out) -> absl::Status {
    for (const std::string& t : in) {
      absl::StatusOr<base::HostPort> hp = base::ParseHostPort(t);
      if (!hp.ok()) {
        return absl::InvalidArgumentError(fmt::format("{}: {}", flag, hp.status().message()));
      }
      absl::StatusOr<boost::asio::ip::tcp::endpoint> endpoint = net::Resolve(*hp);
      if (!endpoint.ok()) return endpoint.status();
      out.push_back(*endpoint);
    }
    return absl::OkStatus();
  };
  if (absl::Status s = resolve(targets, "--target", o.targets); !s.ok()) return s;
  if (absl::Status s = resolve(publisher_targets, "--publisher-target", o.publisher_targets);
      !s.ok()) {
    return s;
  }
  return o;
}

}  // namespace loadgen
