// Moves bytes both ways between a client and its backend until both directions have ended.
//
// Each direction waits until its source is readable, reads what is there into the thread's
// shared buffer and writes it on at once, so an idle tunnel holds no buffer at all. Only when the
// destination cannot take everything does the rest go into a buffer of the direction's own, and
// the direction stops reading until it is written: backpressure, bounded by one read.
//
// End of stream in one direction is passed on as a half-close (shutdown of the sending side), and
// the other direction goes on until it ends too. An error in either, the idle timeout, or Close()
// ends both. A backend that closes without sending a byte within two seconds, while the client
// has not ended its side, is reported as a connect failure (passive health).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace proxy {

class Worker;
struct BackendState;

class Tunnel : public std::enable_shared_from_this<Tunnel> {
 public:
  using Clock = std::chrono::steady_clock;

  // What a tunnel keeps up for its session beyond the bytes: `refresh` runs every
  // `refresh_interval` while it lasts (the sticky record's TTL), `close` once when it ends.
  struct Hooks {
    std::function<void()> refresh;
    std::chrono::milliseconds refresh_interval{0};  // 0: no refresh
    std::function<void()> close;
  };

  // `idle_timeout` 0: none.
  Tunnel(Worker& worker, boost::asio::ip::tcp::socket client, boost::asio::ip::tcp::socket backend,
         std::shared_ptr<BackendState> state, std::chrono::milliseconds idle_timeout, Hooks hooks);
  ~Tunnel();

  void Start();
  // Ends both directions now.
  void Close();
  // Ends both directions at `when` (for spreading closes over a jitter window).
  void CloseAt(Clock::time_point when);
  void Refresh() {
    if (hooks_.refresh) hooks_.refresh();
  }
  BackendState& backend() const { return *state_; }

 private:
  struct Direction {
    boost::asio::ip::tcp::socket* from;
    boost::asio::ip::tcp::socket* to;
    std::atomic<uint64_t>* counter;
    std::string pending;  // read but not yet written
    uint64_t bytes = 0;
    bool eof = false;
  };

  void WaitReadable(Direction& d);
  void OnReadable(Direction& d, const boost::system::error_code& ec);
  void WaitWritable(Direction& d);
  void OnWritable(Direction& d, const boost::system::error_code& ec);
  void EndOfStream(Direction& d);
  // Whether the backend's end of the connection now looks like a refusal (see above).
  bool RefusedAtOnce() const;
  void ArmTimer();
  void OnTimer(const boost::system::error_code& ec);

  Worker& worker_;
  boost::asio::ip::tcp::socket client_;
  boost::asio::ip::tcp::socket backend_;
  std::shared_ptr<BackendState> state_;  // kept alive: a reload may drop it from the pool
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds idle_timeout_;
  Hooks hooks_;
  Direction up_;    // client -> backend
  Direction down_;  // backend -> client
  Clock::time_point started_at_;
  Clock::time_point last_activity_;
  Clock::time_point close_at_ = Clock::time_point::max();
  Clock::time_point next_refresh_ = Clock::time_point::max();
  bool closed_ = false;
};

}  // namespace proxy
