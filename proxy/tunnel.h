// Moves bytes both ways between a client and its backend until the session ends.
//
// The two sockets are RawSockets in the worker's edge-triggered Poller (see raw_socket.h). A
// direction reads from its source into the worker's shared buffer and writes on at once, so an
// idle tunnel holds no buffer. Only when the destination cannot take everything does the rest go
// into a buffer of the direction's own, and the direction stops reading until it is written:
// backpressure, bounded by one read. Edge-triggered readiness is kept as two flags per socket;
// a read shorter than asked means the socket is drained (TCP hands over all it has), so a drained
// socket costs no extra read to find out, nor does the end of stream of a peer that closed.
//
// No splice(2): bench/micro/relay_bench.cc measures it slower than read and write for reads up to
// 16 KiB and a few percent faster only at 64 KiB, while it would cost a pipe (two descriptors
// and a kernel buffer) per direction per connection.
//
// End of stream: in tcp mode it is passed on as a half-close and the other direction goes on; in
// mqtt mode, which has no half-close, the backend's end of stream ends the session (the client's
// is passed on, and the broker closes in turn), and so does an error on the backend's socket (a
// broker that resets: what it sent before still reaches the client, even when a write to it
// failed first). Any other error, the idle timeout or Close() ends both at once.
//
// Passive health hears of the connection from the tunnel, not at the TCP connect: a backend that
// accepts and then closes or resets without a byte within two seconds, before the client closed,
// has failed; its first byte is a success. Counting the accepted connect as a success would reset
// the count of failures in a row at every such connection, and a backend that accepts and drops
// every client would never be ejected. A session silent for longer: in tcp mode a success (a
// service may wait for its client); in mqtt mode, where the broker has a CONNECT to answer, a
// failure, once the broker closes before answering, the client gives up or the session ends, or
// the pool's answer_timeout_ms passes, so that a hung broker (accepting in the kernel, answering
// nothing) is ejected without active checks.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/raw_socket.h"
#include "proxy/session_end.h"

namespace proxy {

class Worker;
struct BackendState;

class Tunnel : public std::enable_shared_from_this<Tunnel>, private RawSocket::Sink {
 public:
  using Clock = std::chrono::steady_clock;

  using End = SessionEnd;

  // How a session went, for the close hook.
  struct Summary {
    End end;
    uint64_t bytes_from_client;  // through the tunnel
    uint64_t bytes_to_client;
  };

  // What a tunnel keeps up for its session beyond the bytes: `refresh` runs every
  // `refresh_interval` while it lasts (the sticky record's TTL), `close` once when it ends (in
  // mqtt mode: when the broker ends it, though the client's side lingers a moment).
  struct Hooks {
    std::function<void()> refresh;
    std::chrono::milliseconds refresh_interval{0};  // 0: no refresh
    std::function<void(const Summary&)> close;
    // Shown what the backend sends, a read at a time, until it sets `done` (once it has the
    // whole CONNACK, after any MQTT 5 AUTH exchange); returns a new idle timeout if what it saw
    // calls for one (the CONNACK's Server Keep Alive).
    std::function<std::optional<std::chrono::milliseconds>(std::string_view, bool& done)>
        first_reply;
  };

  // `idle_timeout` 0: none. `half_close`: tcp semantics. `answer_timeout` (mqtt): how long the
  // broker may take to answer the CONNECT before it counts as failed; 0: no limit.
  Tunnel(Worker& worker, std::shared_ptr<RawSocket> client, std::shared_ptr<RawSocket> backend,
         std::shared_ptr<BackendState> state, std::chrono::milliseconds idle_timeout,
         bool half_close, std::chrono::milliseconds answer_timeout, Hooks hooks);
  ~Tunnel();

  void Start();
  // Ends both directions now; `why`, unless the session had already ended otherwise.
  void Close(End why);
  // Ends both directions at `when` (for spreading closes over a jitter window), for `why`.
  void CloseAt(Clock::time_point when, End why);
  void Refresh() {
    if (hooks_.refresh) hooks_.refresh();
  }
  BackendState& backend() const { return *state_; }
  bool closed() const { return closed_; }

 private:
  struct Direction {
    RawSocket* from;
    RawSocket* to;
    std::atomic<uint64_t>* counter;
    std::string pending;  // read but not yet written
    uint64_t bytes = 0;
    bool eof = false;
    bool discard = false;  // the destination failed: what is read is dropped
  };

  void OnEvents(RawSocket& s, uint32_t events) override;
  // Moves what `d` can move now; false when the tunnel closed (or only lingers).
  bool Pump(Direction& d);
  bool Flush(Direction& d);
  // `d` reached its end of stream: half-closes towards its destination, or closes the tunnel
  // (then false).
  bool EndOfStream(Direction& d);
  // The broker ended an MQTT session: ends the client's side politely (see tunnel.cc); false.
  bool Linger();
  // A read from or a write to `s` failed: closes the tunnel, or, for the broker's socket in mqtt
  // mode, lingers. False.
  bool Failed(const RawSocket& s);
  // Writing `d` on failed: Failed, but for a write to the broker in mqtt mode, which first reads
  // on what the broker sent before it failed (see tunnel.cc). False when the tunnel closed.
  bool WriteFailed(Direction& d);
  bool RefusedAtOnce() const;
  // Records why the session ends, unless something else ended it first.
  void Ended(End why) {
    if (!end_) end_ = why;
  }
  // Runs the close hook, once.
  void RunCloseHook();
  // Reports the backend's verdict to passive health, once.
  void Judge(bool ok);
  void ArmTimer();
  void OnTimer(const boost::system::error_code& ec);

  Worker& worker_;
  std::shared_ptr<RawSocket> client_;
  std::shared_ptr<RawSocket> backend_;
  std::shared_ptr<BackendState> state_;  // kept alive: a reload may drop it from the pool
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds idle_timeout_;
  bool half_close_;
  std::chrono::milliseconds answer_timeout_;
  Hooks hooks_;
  Direction up_;    // client -> backend
  Direction down_;  // backend -> client
  Clock::time_point started_at_;
  Clock::time_point last_activity_;
  Clock::time_point close_at_ = Clock::time_point::max();
  End close_at_why_ = End::kStopping;  // the reason that goes with close_at_
  std::optional<End> end_;
  Clock::time_point judge_at_ = Clock::time_point::max();  // mqtt: the broker's time to answer
  Clock::time_point next_refresh_ = Clock::time_point::max();
  bool resume_posted_ = false;
  bool lingering_ = false;  // the backend is gone; what the client still sends is dropped
  bool judged_ = false;
  bool closed_ = false;
};

}  // namespace proxy
