// The lingering close: write, shut down sending, drain, close.
#include "backend/graceful_close.h"

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <span>

namespace backend {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Closer : public std::enable_shared_from_this<Closer> {
 public:
  Closer(tcp::socket socket, OutBuffer pending, SocketToken token)
      : socket_(std::move(socket)),
        pending_(std::move(pending)),
        token_(std::move(token)),
        deadline_(socket_.get_executor()) {}

  void Start(std::chrono::milliseconds linger) {
    deadline_.expires_after(linger);
    deadline_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->socket_.close();  // cancels whatever is pending
    });
    Write();
  }

 private:
  void Write() {
    if (pending_.empty()) {
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
      Drain();
      return;
    }
    size_t n = pending_.Gather(gather_.data());
    // The operation keeps the span, so the buffers it points to are members.
    socket_.async_write_some(
        std::span(gather_.data(), n),
        [self = shared_from_this()](const boost::system::error_code& ec, size_t written) {
          if (ec) return self->Finish();
          self->pending_.Consume(written);
          self->Write();
        });
  }

  void Drain() {
    socket_.async_read_some(
        asio::buffer(discard_),
        [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
          if (ec) return self->Finish();
          self->Drain();
        });
  }

  void Finish() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    deadline_.cancel();
  }

  tcp::socket socket_;
  OutBuffer pending_;
  SocketToken token_;
  asio::steady_timer deadline_;
  std::array<asio::const_buffer, OutBuffer::kMaxGather> gather_;
  std::array<char, 512> discard_;
};

}  // namespace

void CloseGracefully(tcp::socket socket, OutBuffer pending, SocketToken token,
                     std::chrono::milliseconds linger) {
  boost::system::error_code ignored;
  socket.non_blocking(false, ignored);
  std::make_shared<Closer>(std::move(socket), std::move(pending), std::move(token))->Start(linger);
}

}  // namespace backend
