// HttpServer: an acceptor and one Beast session per connection, in the style of Beast's
// http_server_async example: each session owns its stream and buffer, is kept alive by its
// pending operation, and reads, handles and writes in turn until the client closes.
#include "net/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/listen.h"

namespace net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr size_t kMaxSessions = 64;

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, HttpHandler h) : io(io), acceptor(io), handler(std::move(h)) {}

  void Accept() {
    acceptor.async_accept(
        [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
          if (!ec && self->sessions < kMaxSessions) {
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
    ~Session() { --server->sessions; }

    void Read() {
      parser.emplace();
      parser->body_limit(kMaxBodyBytes);
      stream.expires_after(kRequestTimeout);
      http::async_read(
          stream, buffer, *parser,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
    }

    void OnRead(beast::error_code ec) {
      if (ec == http::error::end_of_stream) {
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        return;
      }
      if (ec) return;
      const auto& req = parser->get();
      HttpRequest request;
      request.method = std::string(req.method_string());
      std::string_view target(req.target().data(), req.target().size());
      size_t q = target.find('?');
      request.path = std::string(target.substr(0, q));
      if (q != std::string_view::npos) request.query = std::string(target.substr(q + 1));
      request.body = req.body();
      HttpResponse out = server->handler(request);

      response.emplace(static_cast<http::status>(out.status), req.version());
      response->set(http::field::server, "switchboard");
      response->set(http::field::content_type, out.content_type);
      response->keep_alive(req.keep_alive());
      response->body() = std::move(out.body);
      response->prepare_payload();
      http::async_write(stream, *response,
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec || !self->response->keep_alive()) return;
                          self->Read();
                        });
    }

    std::shared_ptr<Impl> server;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    std::optional<http::response<http::string_body>> response;
  };

  asio::io_context& io;
  tcp::acceptor acceptor;
  HttpHandler handler;
  size_t sessions = 0;
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
}

}  // namespace net
