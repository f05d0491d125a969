// Tunnel: non-blocking reads and writes on raw descriptors, driven by edge-triggered events.
#include "proxy/tunnel.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>

#include "proxy/backend_state.h"
#include "proxy/worker.h"

namespace proxy {

namespace asio = boost::asio;

namespace {
constexpr auto kImmediateReset = std::chrono::seconds(2);
// Reads per direction before other connections of the thread get their turn.
constexpr int kReadsPerTurn = 4;
// How long a client may go on sending after the broker ended its session.
constexpr auto kLinger = std::chrono::seconds(1);
}  // namespace

Tunnel::Tunnel(Worker& worker, std::shared_ptr<RawSocket> client,
               std::shared_ptr<RawSocket> backend, std::shared_ptr<BackendState> state,
               std::chrono::milliseconds idle_timeout, bool half_close,
               std::chrono::milliseconds answer_timeout, Hooks hooks)
    : worker_(worker),
      client_(std::move(client)),
      backend_(std::move(backend)),
      state_(std::move(state)),
      timer_(worker.io()),
      idle_timeout_(idle_timeout),
      half_close_(half_close),
      answer_timeout_(answer_timeout),
      hooks_(std::move(hooks)),
      up_{client_.get(), backend_.get(), &state_->bytes_to_backend},
      down_{backend_.get(), client_.get(), &state_->bytes_to_client} {}

Tunnel::~Tunnel() {
  client_->set_sink(nullptr);
  backend_->set_sink(nullptr);
}

void Tunnel::Start() {
  started_at_ = last_activity_ = Clock::now();
  if (hooks_.refresh && hooks_.refresh_interval.count() > 0) {
    next_refresh_ = started_at_ + hooks_.refresh_interval;
  }
  if (answer_timeout_.count() > 0) judge_at_ = started_at_ + answer_timeout_;
  worker_.Register(shared_from_this());
  client_->set_sink(this);
  backend_->set_sink(this);
  if (Pump(up_)) Pump(down_);
  if (!closed_) ArmTimer();
}

void Tunnel::OnEvents(RawSocket& s, uint32_t) {
  if (closed_) return;
  // The socket's flags are up to date. The socket that became writable may unblock the
  // direction writing to it; the one that became readable, the direction reading from it.
  Direction& reading = &s == client_.get() ? up_ : down_;
  Direction& writing = &s == client_.get() ? down_ : up_;
  if (s.writable && !writing.pending.empty() && !Flush(writing)) return;
  if (Pump(writing)) Pump(reading);
}

bool Tunnel::Flush(Direction& d) {
  ssize_t n = ::send(d.to->fd(), d.pending.data(), d.pending.size(), MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return WriteFailed(d);
  size_t written = n > 0 ? static_cast<size_t>(n) : 0;
  // Progress, however little, is activity: a slow reader is not an idle one.
  if (written > 0) last_activity_ = Clock::now();
  d.pending.erase(0, written);
  if (!d.pending.empty()) {
    d.to->writable = false;
    return true;
  }
  std::string().swap(d.pending);  // an idle direction holds no buffer
  // Lingering, the broker's last bytes were waiting: its end of stream follows them.
  if (&d == &down_ && lingering_) ::shutdown(client_->fd(), SHUT_WR);
  return true;
}

bool Tunnel::Failed(const RawSocket& s) {
  const End why = &s == client_.get() ? End::kClientError : End::kBackendError;
  // In mqtt mode, the broker's failure (it reset the connection: a broker that closes with
  // bytes of the client unread) ends the session as its end of stream does, so that what it
  // said last, still on its way to the client, is not destroyed with the client's connection.
  if (!half_close_ && &s == backend_.get() && !lingering_) {
    Ended(why);
    return Linger();
  }
  Close(why);
  return false;
}

bool Tunnel::WriteFailed(Direction& d) {
  // A broker that resets the connection (it closed with the client's bytes unread) may have said
  // why just before: a DISCONNECT with its reason, which lies in its socket ahead of the error.
  // When the reset comes while the client's bytes wait to be written, writing them fails first;
  // lingering then would close the broker's socket with those last words unread. So the client's
  // bytes are dropped from now on, and the broker's read on: the error ends its stream there,
  // or the linger's second, as a client that does not read them would hold the tunnel open.
  if (!half_close_ && &d == &up_ && !lingering_) {
    Ended(End::kBackendError);
    CloseAt(Clock::now() + kLinger, End::kBackendError);
    up_.discard = true;
    std::string().swap(up_.pending);
    backend_->readable = true;
    return Pump(down_);
  }
  return Failed(*d.to);
}

bool Tunnel::Pump(Direction& d) {
  if (closed_) return false;
  std::span<char> buffer = worker_.read_buffer();
  for (int round = 0; round < kReadsPerTurn; ++round) {
    if (!d.from->readable || !d.pending.empty() || d.eof) return true;
    ssize_t n = ::recv(d.from->fd(), buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        d.from->readable = false;
        d.from->urgent = false;
        return true;
      }
      if (errno == EINTR) continue;
      if (&d == &down_ && RefusedAtOnce()) Judge(false);
      return Failed(*d.from);
    }
    if (n == 0) return EndOfStream(d);
    auto got = static_cast<size_t>(n);
    if (lingering_ || d.discard) continue;  // read to be dropped: the backend is gone
    // A short read: drained for now. When the peer has closed (its FIN is queued behind all its
    // data), drained means the end of stream, which is taken as read without a recv returning 0
    // (unless an error came too: that one is for the read to report). Not at urgent data, where
    // a read stops short at the mark with more behind it (raw_socket.h).
    bool drained = got < buffer.size() && !d.from->urgent;
    bool ended = drained && d.from->peer_closed && !d.from->failed;
    if (drained && !d.from->peer_closed) d.from->readable = false;
    if (d.bytes == 0 && &d == &down_) Judge(true);
    if (&d == &down_ && hooks_.first_reply) {
      bool done = true;
      std::optional<std::chrono::milliseconds> idle =
          hooks_.first_reply(std::string_view(buffer.data(), got), done);
      if (done) hooks_.first_reply = nullptr;
      if (idle) {
        idle_timeout_ = *idle;
        ArmTimer();
      }
    }
    d.bytes += got;
    d.counter->fetch_add(got, std::memory_order_relaxed);
    last_activity_ = Clock::now();
    ssize_t w = ::send(d.to->fd(), buffer.data(), got, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return WriteFailed(d);
    auto written = w > 0 ? static_cast<size_t>(w) : 0;
    if (written < got) {
      d.pending.assign(buffer.data() + written, got - written);
      d.to->writable = false;
      return true;
    }
    if (ended) return EndOfStream(d);
  }
  // Still readable after a full turn: continue after the thread's other work. Edge-triggered,
  // no new event would come for what is already there.
  if (d.from->readable && !resume_posted_) {
    resume_posted_ = true;
    asio::post(worker_.io(), [self = shared_from_this()] {
      self->resume_posted_ = false;
      if (self->Pump(self->up_)) self->Pump(self->down_);
    });
  }
  return true;
}

bool Tunnel::EndOfStream(Direction& d) {
  // A direction reads only when it has nothing pending, so its end of stream comes after its
  // last bytes went out.
  d.eof = true;
  // mqtt: either side's end of stream ends the session. tcp: a half-close, passed on; the session
  // ends with the other side's.
  const End end = &d == &up_ ? End::kClientClosed : End::kBackendClosed;
  if (!half_close_) Ended(end);
  if (&d == &down_ && RefusedAtOnce()) Judge(false);
  if (&d == &up_ && !half_close_ && down_.bytes == 0) {
    // An MQTT client that left before the broker answered its CONNECT: nothing will come for it,
    // and a hung broker would never close. What the client sent goes on, then a FIN. Past the
    // window in which leaving says nothing about the broker, the client gave up waiting.
    if (Clock::now() - started_at_ >= kImmediateReset) Judge(false);
    Close(end);
    return false;
  }
  Direction& other = &d == &up_ ? down_ : up_;
  if (other.eof || lingering_) {
    Close(end);
    return false;
  }
  // MQTT has no half-close: when the broker ends, the session is over.
  if (!half_close_ && &d == &down_) return Linger();
  ::shutdown(d.to->fd(), SHUT_WR);
  return true;
}

bool Tunnel::Linger() {
  // The broker's last words (a DISCONNECT with its reason) go to the client, which may still be
  // sending (the PUBLISH the broker refused, say). Closing on its unread bytes would reset the
  // connection, and a reset can destroy those last words before the client reads them. So the
  // client's side ends as the broker ends its own: a FIN once what the broker sent has gone (at
  // once, or when the pending rest is written: Flush), then what the client still sends is read
  // and dropped until it closes, or for a second at most. The connection no longer counts as the
  // backend's.
  lingering_ = true;
  down_.eof = true;  // nothing more comes from the broker
  if (down_.pending.empty()) ::shutdown(client_->fd(), SHUT_WR);
  backend_->Close();
  std::string().swap(up_.pending);
  RunCloseHook();
  // After a failed write, reading the broker's last words had a second of its own: the linger
  // gets its whole second too, not what is left of that one.
  if (up_.discard) close_at_ = Clock::time_point::max();
  CloseAt(Clock::now() + kLinger, *end_);
  Pump(up_);
  return false;  // nothing more to move towards the client
}

void Tunnel::Judge(bool ok) {
  if (judged_) return;
  judged_ = true;
  if (ok) {
    worker_.ReportConnectSuccess(state_);
  } else {
    worker_.ReportConnectFailure(state_);
  }
}

bool Tunnel::RefusedAtOnce() const {
  // After the client's end of stream, closing is the backend's normal answer, silent or not:
  // a client that connects and leaves at once (a TCP ping, a scanner) says nothing about it. An
  // MQTT broker answers a CONNECT before anything else, so closing before it did is a refusal
  // however late.
  return down_.bytes == 0 && !up_.eof &&
         (!half_close_ || Clock::now() - started_at_ < kImmediateReset);
}

void Tunnel::ArmTimer() {
  Clock::time_point at = std::min(close_at_, next_refresh_);
  if (idle_timeout_.count() > 0) at = std::min(at, last_activity_ + idle_timeout_);
  if (!judged_) at = std::min(at, judge_at_);
  if (at == Clock::time_point::max()) return;
  timer_.expires_at(at);
  timer_.async_wait(
      [self = shared_from_this()](const boost::system::error_code& ec) { self->OnTimer(ec); });
}

void Tunnel::OnTimer(const boost::system::error_code& ec) {
  if (ec || closed_) return;
  Clock::time_point now = Clock::now();
  if (now >= next_refresh_) {
    Refresh();
    next_refresh_ = now + hooks_.refresh_interval;
  }
  if (now >= judge_at_) Judge(false);  // an MQTT broker that has not answered the CONNECT
  if (idle_timeout_.count() > 0 && now - last_activity_ >= idle_timeout_) {
    return Close(End::kIdleTimeout);
  }
  if (now >= close_at_) return Close(close_at_why_);
  ArmTimer();
}

void Tunnel::CloseAt(Clock::time_point when, End why) {
  if (closed_ || when >= close_at_) return;
  close_at_ = when;
  close_at_why_ = why;
  ArmTimer();  // replaces the pending wait
}

void Tunnel::RunCloseHook() {
  if (!hooks_.close) return;
  std::exchange(hooks_.close, nullptr)(Summary{.end = end_.value_or(End::kStopping),
                                               .bytes_from_client = up_.bytes,
                                               .bytes_to_client = down_.bytes});
}

void Tunnel::Close(End why) {
  if (closed_) return;
  Ended(why);
  closed_ = true;
  // A backend that said nothing, but kept the connection past the window of a refusal: fine for
  // a TCP service, which may wait for its client; an MQTT broker had a CONNECT to answer.
  if (Clock::now() - started_at_ >= kImmediateReset) Judge(half_close_);
  client_->Close();  // closing a descriptor also takes it out of the epoll set
  backend_->Close();
  timer_.cancel();
  RunCloseHook();
  worker_.Unregister(this);  // released after the poller's current batch
}

}  // namespace proxy
