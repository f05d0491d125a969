// Runs a checker against a server of the test's own on loopback, for the checkers' tests.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>

#include "health/checker.h"

namespace health {

// Accepts one connection on a loopback port and hands it to `serve` while `checker` checks that
// port; returns the check's result once both are done.
CheckResult CheckAgainst(
    Checker& checker,
    std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket&)> serve,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace health
