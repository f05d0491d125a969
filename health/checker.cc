// The checker factory: the one place that knows every kind.
#include "health/checker.h"

#include "health/http_checker.h"
#include "health/mqtt_checker.h"
#include "health/tcp_checker.h"

namespace health {

std::unique_ptr<Checker> MakeChecker(const CheckSpec& spec) {
  switch (spec.kind) {
    case CheckKind::kTcp:
      return std::make_unique<TcpChecker>();
    case CheckKind::kMqtt:
      return std::make_unique<MqttChecker>(spec);
    case CheckKind::kHttp:
      return std::make_unique<HttpChecker>(spec.http_path);
  }
  return nullptr;
}

}  // namespace health
