// Counts an open client socket for as long as the token lives; the token travels with the socket
// from accept through the handshake and the connection to the final close, so the broker always
// knows how many descriptors its clients hold (for max_connections and for shutdown).
#pragma once

#include <atomic>
#include <cstdint>

namespace backend {

class SocketToken {
 public:
  SocketToken() = default;
  explicit SocketToken(std::atomic<int64_t>* count) : count_(count) { count_->fetch_add(1); }
  SocketToken(SocketToken&& other) noexcept : count_(other.count_) { other.count_ = nullptr; }
  SocketToken& operator=(SocketToken&& other) noexcept {
    if (this != &other) {
      Release();
      count_ = other.count_;
      other.count_ = nullptr;
    }
    return *this;
  }
  ~SocketToken() { Release(); }

 private:
  void Release() {
    if (count_ != nullptr) count_->fetch_sub(1);
    count_ = nullptr;
  }
  std::atomic<int64_t>* count_ = nullptr;
};

}  // namespace backend
