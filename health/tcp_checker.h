// The tcp checker: healthy when the backend accepts a connection.
#pragma once

#include "health/checker.h"

namespace health {

class TcpChecker : public Checker {
 public:
  boost::asio::awaitable<CheckResult> Check(boost::asio::ip::tcp::endpoint target,
                                            std::chrono::milliseconds timeout) override;
};

}  // namespace health
