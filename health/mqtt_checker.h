// The mqtt checker: healthy when the backend answers an MQTT 3.1.1 CONNECT (clean session) with a
// successful CONNACK. It then sends DISCONNECT, so the broker sees a normal session end and no
// will. Behind a pool with proxy_protocol the CONNECT follows a PROXY v2 LOCAL header, which a
// broker expecting the header accepts as the proxy's own connection. A refusal (any CONNACK return
// code but 0) is unhealthy: the broker is up but will not take clients. The CONNECT has no
// credentials: a broker that wants them is checked with `tcp` or `http`.
#pragma once

#include <cstdint>
#include <string>

#include "health/checker.h"

namespace health {

class MqttChecker : public Checker {
 public:
  MqttChecker(std::string client_id, bool proxy_protocol)
      : client_id_(std::move(client_id)), proxy_protocol_(proxy_protocol) {}
  boost::asio::awaitable<CheckResult> Check(boost::asio::ip::tcp::endpoint target,
                                            std::chrono::milliseconds timeout) override;

 private:
  // Within any sensible maximum a broker sets; the probe lasts its timeout at most anyway.
  static constexpr uint16_t kKeepAliveS = 5;
  std::string client_id_;
  bool proxy_protocol_;  // a PROXY v2 LOCAL header before the CONNECT
};

}  // namespace health
