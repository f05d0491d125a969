// Tunnel: non-blocking reads and writes driven by readiness waits.
#include "proxy/tunnel.h"

#include <boost/asio/buffer.hpp>

#include "proxy/backend_state.h"
#include "proxy/worker.h"

namespace proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kImmediateReset = std::chrono::seconds(2);
constexpr int kReadsPerWakeup = 4;  // then yield to other connections of the thread

bool WouldBlock(const boost::system::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}
}  // namespace

Tunnel::Tunnel(Worker& worker, tcp::socket client, tcp::socket backend,
               std::shared_ptr<BackendState> state, std::chrono::milliseconds idle_timeout,
               Hooks hooks)
    : worker_(worker),
      client_(std::move(client)),
      backend_(std::move(backend)),
      state_(std::move(state)),
      timer_(worker.io()),
      idle_timeout_(idle_timeout),
      hooks_(std::move(hooks)),
      up_{&client_, &backend_, &state_->bytes_to_backend},
      down_{&backend_, &client_, &state_->bytes_to_client} {
  boost::system::error_code ignored;
  client_.non_blocking(true, ignored);
  backend_.non_blocking(true, ignored);
}

Tunnel::~Tunnel() {
  Close();
}

void Tunnel::Start() {
  started_at_ = last_activity_ = Clock::now();
  if (hooks_.refresh && hooks_.refresh_interval.count() > 0) {
    next_refresh_ = started_at_ + hooks_.refresh_interval;
  }
  worker_.Register(this);
  WaitReadable(up_);
  WaitReadable(down_);
  ArmTimer();
}

void Tunnel::WaitReadable(Direction& d) {
  d.from->async_wait(tcp::socket::wait_read,
                     [self = shared_from_this(), &d](const boost::system::error_code& ec) {
                       self->OnReadable(d, ec);
                     });
}

void Tunnel::OnReadable(Direction& d, const boost::system::error_code& wait_ec) {
  if (closed_) return;
  if (wait_ec) return Close();
  std::span<char> buffer = worker_.read_buffer();
  for (int round = 0; round < kReadsPerWakeup; ++round) {
    boost::system::error_code ec;
    size_t n = d.from->read_some(asio::buffer(buffer.data(), buffer.size()), ec);
    if (WouldBlock(ec)) return WaitReadable(d);
    if (ec == asio::error::eof) return EndOfStream(d);
    if (ec) {
      if (&d == &down_ && RefusedAtOnce()) worker_.ReportConnectFailure(state_);
      return Close();
    }
    d.bytes += n;
    d.counter->fetch_add(n, std::memory_order_relaxed);
    last_activity_ = Clock::now();
    size_t written = d.to->write_some(asio::buffer(buffer.data(), n), ec);
    if (ec && !WouldBlock(ec)) return Close();
    if (written < n) {
      d.pending.assign(buffer.data() + written, n - written);
      return WaitWritable(d);
    }
  }
  WaitReadable(d);
}

void Tunnel::WaitWritable(Direction& d) {
  d.to->async_wait(tcp::socket::wait_write,
                   [self = shared_from_this(), &d](const boost::system::error_code& ec) {
                     self->OnWritable(d, ec);
                   });
}

void Tunnel::OnWritable(Direction& d, const boost::system::error_code& wait_ec) {
  if (closed_) return;
  if (wait_ec) return Close();
  boost::system::error_code ec;
  size_t written = d.to->write_some(asio::buffer(d.pending), ec);
  if (ec && !WouldBlock(ec)) return Close();
  d.pending.erase(0, written);
  if (!d.pending.empty()) return WaitWritable(d);
  std::string().swap(d.pending);  // an idle direction holds no buffer
  last_activity_ = Clock::now();
  WaitReadable(d);
}

void Tunnel::EndOfStream(Direction& d) {
  if (&d == &down_ && RefusedAtOnce()) worker_.ReportConnectFailure(state_);
  d.eof = true;
  Direction& other = &d == &up_ ? down_ : up_;
  if (other.eof) return Close();
  // Half-close: pass the end of stream on and let the other direction finish.
  boost::system::error_code ignored;
  d.to->shutdown(tcp::socket::shutdown_send, ignored);
}

bool Tunnel::RefusedAtOnce() const {
  // After the client's end of stream, closing is the backend's normal answer, silent or not:
  // a client that connects and leaves at once (a TCP ping, a scanner) says nothing about it.
  return down_.bytes == 0 && !up_.eof && Clock::now() - started_at_ < kImmediateReset;
}

void Tunnel::ArmTimer() {
  Clock::time_point at = std::min(close_at_, next_refresh_);
  if (idle_timeout_.count() > 0) at = std::min(at, last_activity_ + idle_timeout_);
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
  bool idle = idle_timeout_.count() > 0 && now - last_activity_ >= idle_timeout_;
  if (idle || now >= close_at_) return Close();
  ArmTimer();
}

void Tunnel::CloseAt(Clock::time_point when) {
  if (closed_ || when >= close_at_) return;
  close_at_ = when;
  timer_.cancel();  // the cancelled wait returns without effect; re-arm for the new time
  ArmTimer();
}

void Tunnel::Close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  client_.close(ignored);
  backend_.close(ignored);
  timer_.cancel();
  worker_.Unregister(this);
  if (hooks_.close) std::exchange(hooks_.close, nullptr)();
}

}  // namespace proxy
