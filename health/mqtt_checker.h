// The mqtt checker: healthy when the backend answers an MQTT 3.1.1 CONNECT (clean session) with a
// successful CONNACK. It then sends DISCONNECT, so the broker sees a normal session end and no
// will. A refusal (any CONNACK return code but 0) is unhealthy: the broker is up but will not
// take clients.
#pragma once

#include <string>

#include "health/checker.h"

namespace health {

class MqttChecker : public Checker {
 public:
  explicit MqttChecker(std::string client_id) : client_id_(std::move(client_id)) {}
  boost::asio::awaitable<CheckResult> Check(boost::asio::ip::tcp::endpoint target,
                                            std::chrono::milliseconds timeout) override;

 private:
  std::string client_id_;
};

}  // namespace health
