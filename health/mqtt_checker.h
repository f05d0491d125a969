// The mqtt checker: healthy when the backend answers an MQTT 3.1.1 CONNECT (clean session) with a
// successful CONNACK. It then sends DISCONNECT, so the broker sees a normal session end and no
// will. Behind a pool with proxy_protocol the CONNECT follows a PROXY v2 LOCAL header, which a
// broker expecting the header accepts as the proxy's own connection. A refusal (any CONNACK return
// code but 0) is unhealthy: the broker is up but will not take clients, or not the check's user
// name and password, if any (a broker that refuses anonymous clients wants them).
#pragma once

#include <cstdint>
#include <string>

#include "health/checker.h"

namespace health {

class MqttChecker : public Checker {
 public:
  // Reads the spec's mqtt_* fields and proxy_protocol.
  explicit MqttChecker(const CheckSpec& spec);
  boost::asio::awaitable<CheckResult> Check(boost::asio::ip::tcp::endpoint target,
                                            std::chrono::milliseconds timeout) override;

 private:
  // Within any sensible maximum a broker sets; the probe lasts its timeout at most anyway.
  static constexpr uint16_t kKeepAliveS = 5;
  // What is written on each connection: a PROXY v2 LOCAL header, if the pool sends one, and the
  // CONNECT.
  std::string hello_;
};

}  // namespace health
