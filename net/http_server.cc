// HttpServer: an acceptor and one Beast session per connection, in the style of Beast's
// http_server_async example: each session owns its stream and buffer, is kept alive by its
// pending operation, and reads, handles and writes in turn until the client closes.
#include "net/http_server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <list>

#include "net/listen.h"

namespace net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr size_t kMaxSessions = 64;
constexpr auto kLinger = std::chrono::seconds(1);
constexpr size_t kMaxLingerBytes = 1 << 20;

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, HttpHandler h)
      : io(io), acceptor(io), retry(io), handler(std::move(h)) {}

  void Accept() {
    acceptor.async_accept(
        [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
          if (ec) {
            // Typically out of descriptors, which the next accept would report at once: back
            // off instead of spinning on the error.
            spdlog::warn("admin: accept: {}", ec.message());
            self->retry.expires_after(kAcceptBackoff);
            self->retry.async_wait([self](boost::system::error_code ec) {
              if (!ec && self->acceptor.is_open()) self->Accept();
            });
            return;
          }
          // At the cap, the session that has waited longest for a request gives way, as nginx
          // reuses idle keep-alive connections: idle clients cannot hold the admin port.
          while (self->open() >= kMaxSessions && !self->waiting.empty()) {
            self->waiting.front()->GiveWay();
          }
          if (self->open() < kMaxSessions) {
            std::make_shared<Session>(self, std::move(socket))->Read();
          }
          self->Accept();
        });
  }

  struct Session : std::enable_shared_from_this<Session> {
    Session(std::shared_ptr<Impl> server, tcp::socket socket)
        : server(std::move(server)), stream(std::move(socket)) {
      ++this->server->sessions;
    }
    ~Session() {
      StopWaiting();
      if (gave_way) --server->giving_way;
      --server->sessions;
    }

    void Read() {
      parser.emplace();
      parser->body_limit(kMaxBodyBytes);
      stream.expires_after(kRequestTimeout);
      waiting_at = server->waiting.insert(server->waiting.end(), this);
      http::async_read(
          stream, buffer, *parser,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
    }

    void StopWaiting() {
      if (waiting_at) server->waiting.erase(*std::exchange(waiting_at, std::nullopt));
    }

    // Closes the session, waiting for a request, for a new connection: its read completes with
    // an error and it is gone after that handler.
    void GiveWay() {
      StopWaiting();
      gave_way = true;
      ++server->giving_way;
      stream.close();
    }

    void OnRead(beast::error_code ec) {
      StopWaiting();
      if (gave_way) return;  // read before it gave way: no answer could reach the client
      if (ec == http::error::end_of_stream) {
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        return;
      }
      if (ec.category() == http::make_error_code(http::error::body_limit).category()) {
        // The request cannot be read: say why, then close (what follows it cannot be found).
        HttpResponse refusal = ec == http::error::body_limit
                                   ? HttpResponse{413, "text/plain", "body too large\n"}
                               : ec == http::error::header_limit
                                   ? HttpResponse{431, "text/plain", "header too large\n"}
                                   : HttpResponse{400, "text/plain", "bad request\n"};
        return Respond(std::move(refusal), 11, /*keep_alive=*/false);
      }
      if (ec) return;
      const auto& req = parser->get();
      HttpRequest request;
      request.method = std::string(req.method_string());
      std::string_view target(req.target().data(), req.target().size());
      size_t q = target.find('?');
      request.path = std::string(target.substr(0, q));
      if (q != std::string_view::npos) request.query = std::string(target.substr(q + 1));
      request.authorization = std::string(req[http::field::authorization]);
      request.body = req.body();
      Respond(server->handler(request), req.version(), req.keep_alive());
    }

    void Respond(HttpResponse out, unsigned version, bool keep_alive) {
      response.emplace(static_cast<http::status>(out.status), version);
      response->set(http::field::server, "switchboard");
      response->set(http::field::content_type, out.content_type);
      for (const auto& [name, value] : out.headers)
        response->set(name, value);
      response->keep_alive(keep_alive);
      response->body() = std::move(out.body);
      response->prepare_payload();
      // The answer has a deadline of its own: a client that does not read it is dropped.
      stream.expires_after(kRequestTimeout);
      http::async_write(stream, *response,
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return;
                          if (self->response->keep_alive()) return self->Read();
                          // Closing with the request's rest unread would send a reset, which
                          // can destroy the answer before the client reads it: end the sending
                          // side, then read what is left (a little, briefly) before closing.
                          self->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
                          self->stream.expires_after(kLinger);
                          self->Discard(kMaxLingerBytes);
                        });
    }

    void Discard(size_t budget) {
      stream.async_read_some(asio::buffer(scratch),
                             [self = shared_from_this(), budget](beast::error_code ec, size_t n) {
                               if (!ec && n < budget) self->Discard(budget - n);
                             });
    }

    std::shared_ptr<Impl> server;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    std::optional<http::response<http::string_body>> response;
    std::array<char, 4096> scratch;  // what a refused request still sends, read and dropped
    std::optional<std::list<Session*>::iterator> waiting_at;  // in server->waiting
    bool gave_way = false;
  };

  // Sessions open and not giving way.
  size_t open() const { return sessions - giving_way; }

  asio::io_context& io;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  HttpHandler handler;
  size_t sessions = 0;
  size_t giving_way = 0;        // closed by GiveWay, not yet gone
  std::list<Session*> waiting;  // reading a request, the longest waiting first
};

HttpServer::HttpServer(asio::io_context& io, HttpHandler handler)
    : impl_(std::make_shared<Impl>(io, std::move(handler))) {}

HttpServer::~HttpServer() {
  Close();
}

absl::Status HttpServer::Listen(const base::HostPort& address) {
  absl::StatusOr<tcp::endpoint> endpoint = Resolve(address);
  if (!endpoint.ok()) return endpoint.status();
  absl::StatusOr<tcp::acceptor> acceptor = net::Listen(impl_->io, *endpoint, false);
  if (!acceptor.ok()) return acceptor.status();
  impl_->acceptor = std::move(*acceptor);
  impl_->Accept();
  return absl::OkStatus();
}

uint16_t HttpServer::port() const {
  boost::system::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void HttpServer::Close() {
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->retry.cancel();
}

}  // namespace net
