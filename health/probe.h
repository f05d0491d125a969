// What the checkers share: running a probe against a deadline, and connecting. Internal to health/.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <optional>

#include "health/checker.h"

namespace health {

// Runs `probe` (which fills in ok/error) and times it; if `timeout` passes first, the probe is
// cancelled and the result says "timed out".
boost::asio::awaitable<CheckResult> RunWithTimeout(
    std::function<boost::asio::awaitable<CheckResult>()> probe, std::chrono::milliseconds timeout);

// Connects `socket` to `target`: nullopt on success, else the failed check's result.
boost::asio::awaitable<std::optional<CheckResult>> ConnectTo(
    boost::asio::ip::tcp::socket& socket, const boost::asio::ip::tcp::endpoint& target);

}  // namespace health
