// Connector: a mutex-protected queue; connection setup is not the measured path.
#include "bench/loadgen/connector.h"

#include <fmt/format.h>

namespace loadgen {

void Connector::Add(boost::asio::io_context& io, std::shared_ptr<Client> client) {
  std::lock_guard lock(mutex_);
  queue_.emplace_back(&io, std::move(client));
  ++total_;
}

void Connector::StartMore() {
  while (opening_ < concurrency_ && !queue_.empty()) {
    auto [io, client] = std::move(queue_.front());
    queue_.pop_front();
    ++opening_;
    boost::asio::post(*io, [client] { client->Connect(); });
  }
}

void Connector::Finish(bool ok) {
  std::lock_guard lock(mutex_);
  if (opening_ > 0) --opening_;
  (ok ? ready_ : failed_) += 1;
  StartMore();
  changed_.notify_all();
}

std::function<void(Client&)> Connector::Done() {
  return [this](Client&) { Finish(true); };
}

std::function<void(Client&, const std::string&)> Connector::Failed(std::string* error) {
  return [this, error](Client&, const std::string& why) {
    *error = why;
    {
      std::lock_guard lock(mutex_);
      if (first_error_.empty()) first_error_ = why;
    }
    Finish(false);
  };
}

absl::Status Connector::Wait(std::chrono::steady_clock::duration timeout, std::string_view what) {
  std::unique_lock lock(mutex_);
  StartMore();
  bool finished = changed_.wait_for(lock, timeout, [&] { return ready_ + failed_ >= total_; });
  if (failed_ > 0) {
    return absl::UnavailableError(
        fmt::format("{} of {} {} failed: {}", failed_, total_, what, first_error_));
  }
  if (!finished) {
    return absl::DeadlineExceededError(
        fmt::format("only {} of {} {} ready in time", ready_, total_, what));
  }
  return absl::OkStatus();
}

}  // namespace loadgen
