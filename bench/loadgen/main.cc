// switchboard-bench: the MQTT load generator. See --help, and bench/README.md for the method.
//
// Exit status: 0 after a run, 2 for bad options, 1 when the run could not be made, 3 when
// messages were lost at QoS 1 or 2 (the figures are printed all the same).
#include <fmt/format.h>

#include <boost/json.hpp>
#include <iostream>

#include "bench/loadgen/options.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/scenarios.h"

int main(int argc, char** argv) {
  absl::StatusOr<loadgen::Options> options = loadgen::ParseOptions(argc, argv);
  if (!options.ok()) {
    if (absl::IsCancelled(options.status())) {
      std::cout << options.status().message() << "\n";
      return 0;
    }
    std::cerr << "switchboard-bench: " << options.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<boost::json::object> result;
  switch (options->scenario) {
    case loadgen::Scenario::kConnect:
      result = loadgen::RunConnect(*options);
      break;
    case loadgen::Scenario::kIdle:
      result = loadgen::RunIdle(*options);
      break;
    default:
      result = loadgen::RunPubSub(*options);
      break;
  }
  if (!result.ok()) {
    std::cerr << "switchboard-bench: " << result.status().message() << "\n";
    return 1;
  }
  loadgen::PrintSummary(*result);
  if (!options->json_path.empty()) {
    if (absl::Status s = loadgen::WriteJson(options->json_path, *result); !s.ok()) {
      std::cerr << "switchboard-bench: " << s.message() << "\n";
      return 1;
    }
  }
  const boost::json::value* lost = result->if_contains("lost");
  bool loss = lost != nullptr && lost->to_number<double>() > 0;
  return loss && options->qos != mqtt::QoS::k0 ? 3 : 0;
}
