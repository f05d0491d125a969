// Opens many client connections with a cap on how many are being opened at once, and waits until
// all are ready (connected, or subscribed: the caller decides which event means ready).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "bench/loadgen/client.h"

namespace loadgen {

class Connector {
 public:
  explicit Connector(uint32_t concurrency) : concurrency_(concurrency) {}

  // Queues a client; it connects once a slot is free.
  void Add(boost::asio::io_context& io, std::shared_ptr<Client> client);
  // The event that means a client is ready.
  std::function<void(Client&)> Done();
  // The event that means a client failed; the reason is stored in `*error`.
  std::function<void(Client&, const std::string&)> Failed(std::string* error);
  // Starts the queued clients and waits until all are ready; an error if one failed or the
  // deadline passed.
  [[nodiscard]] absl::Status Wait(std::chrono::steady_clock::duration timeout,
                                  std::string_view what);

 private:
  void StartMore();  // with mutex_ held
  void Finish(bool ok);

  uint32_t concurrency_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<boost::asio::io_context*, std::shared_ptr<Client>>> queue_;
  size_t total_ = 0;
  size_t opening_ = 0;
  size_t ready_ = 0;
  size_t failed_ = 0;
  std::string first_error_;
};

}  // namespace loadgen
