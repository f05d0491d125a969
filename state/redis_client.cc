// RedisClient: the hiredis async context, its Asio event adapter, reconnection and deadlines.
//
// The adapter: hiredis asks for read or write interest through ev.addRead/addWrite (and drops it
// with delRead/delWrite); each interest is an async_wait on a stream_descriptor over hiredis's
// socket, re-armed after every event while the interest lasts. The descriptor never owns the
// socket: hiredis closes it, so the adapter releases it first.
#include "state/redis_client.h"

#include <fmt/format.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <deque>
#include <utility>

#include "base/host_port.h"

namespace state {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::string RedactRedisUrl(std::string_view url) {
  size_t at = url.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  size_t scheme_end = url.find("//");
  size_t colon = url.find(':', scheme_end == std::string_view::npos ? 0 : scheme_end + 2);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return fmt::format("{}:***{}", url.substr(0, colon), url.substr(at));
}

absl::StatusOr<RedisOptions> ParseRedisUrl(std::string_view url) {
  auto error = [&] {
    return absl::InvalidArgumentError(fmt::format(
        "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], got \"{}\"", RedactRedisUrl(url)));
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return error();
  std::string_view rest = url.substr(kScheme.size());
  RedisOptions o;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) return error();  // a user without a password
    if (colon > 0) o.username = std::string(userinfo.substr(0, colon));
    o.password = std::string(userinfo.substr(colon + 1));
    rest = rest.substr(at + 1);
  }
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), o.db);
      if (ec != std::errc() || end != db.data() + db.size() || o.db < 0) return error();
    }
    rest = rest.substr(0, slash);
  }
  // HOST[:PORT], as a listener's address is written, but with a host and a port always.
  size_t bracket = rest.rfind(']');
  size_t colon = rest.rfind(':');
  bool has_port =
      colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket);
  if (rest.empty() || rest.front() == ':' || rest.starts_with("[]")) return error();
  absl::StatusOr<base::HostPort> address =
      base::ParseHostPort(has_port ? std::string(rest) : fmt::format("{}:{}", rest, o.port));
  if (!address.ok() || address->port == 0) return error();
  o.host = std::move(address->host);
  o.port = address->port;
  return o;
}

namespace {

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      break;
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  if (r->str != nullptr) out.str.assign(r->str, r->len);
  out.integer = r->integer;
  for (size_t i = 0; i < r->elements; ++i)
    out.elements.push_back(Convert(r->element[i]));
  return out;
}

}  // namespace

struct RedisClient::Impl {
  // A call waiting for its reply; shared with hiredis's callback so that whichever of reply,
  // deadline or disconnection comes first answers it, once.
  struct Pending {
    Callback done;
    Clock::time_point deadline;
    void Finish(absl::StatusOr<RedisReply> r) {
      if (done) std::exchange(done, nullptr)(std::move(r));
    }
  };

  Impl(asio::io_context& io, RedisOptions o)
      : io(io), options(std::move(o)), resolver(io), reconnect_timer(io), watchdog(io) {}

  asio::io_context& io;
  RedisOptions options;
  std::weak_ptr<RedisClient> owner;
  redisAsyncContext* context = nullptr;
  std::unique_ptr<asio::posix::stream_descriptor> socket;
  bool want_read = false, want_write = false, reading = false, writing = false;
  bool connected = false, stopped = false;
  Clock::time_point connect_started;
  std::chrono::milliseconds backoff = kFirstBackoff;
  Clock::time_point ready_at;
  asio::ip::tcp::resolver resolver;
  asio::steady_timer reconnect_timer;
  asio::steady_timer watchdog;
  std::deque<std::shared_ptr<Pending>> pending;
  std::vector<std::pair<std::string, MessageHandler>> subscriptions;
  std::vector<std::function<void()>> on_connect, on_disconnect;

  void Connect();
  void ConnectTo(const std::string& address);
  void Handshake();
  void Ready();
  void Refused(std::string_view command, const absl::StatusOr<RedisReply>& reply);
  void ForgetSocket();
  void ScheduleReconnect();
  void Lost(std::string_view why);
  // Fails every call still waiting. Taken out first: a callback may call again, or stop the
  // client.
  void FailPending(const absl::Status& status) {
    for (const auto& p : std::exchange(pending, {}))
      p->Finish(status);
  }
  void ArmRead();
  void ArmWrite();
  void ArmWatchdog();
  void SendSubscriptions();
  void Send(std::vector<std::string> args, std::shared_ptr<Pending> p);
};

// hiredis event hooks: `privdata` is the Impl.
namespace {

RedisClient::Impl* Of(void* privdata) {
  return static_cast<RedisClient::Impl*>(privdata);
}

void AddRead(void* d) {
  Of(d)->want_read = true;
  Of(d)->ArmRead();
}
void DelRead(void* d) {
  Of(d)->want_read = false;
}
void AddWrite(void* d) {
  Of(d)->want_write = true;
  Of(d)->ArmWrite();
}
void DelWrite(void* d) {
  Of(d)->want_write = false;
}
void Cleanup(void* d) {
  RedisClient::Impl* impl = Of(d);
  impl->want_read = impl->want_write = false;
  impl->ForgetSocket();
}

void OnConnected(const redisAsyncContext* c, int status) {
  auto* impl = static_cast<RedisClient::Impl*>(c->data);
  if (status != REDIS_OK) {
    // hiredis frees the context, and closes the socket, after this callback.
    impl->context = nullptr;
    impl->ForgetSocket();
    impl->Lost(c->errstr != nullptr ? c->errstr : "connect failed");
    return;
  }
  impl->Handshake();
}

void OnDisconnected(const redisAsyncContext* c, int status) {
  auto* impl = static_cast<RedisClient::Impl*>(c->data);
  impl->context = nullptr;  // hiredis frees it after this callback
  impl->ForgetSocket();
  impl->Lost(status == REDIS_OK ? "disconnected" : (c->errstr ? c->errstr : "connection lost"));
}

void OnReply(redisAsyncContext*, void* r, void* privdata) {
  auto* p = static_cast<std::shared_ptr<RedisClient::Impl::Pending>*>(privdata);
  auto* reply = static_cast<redisReply*>(r);
  if (reply == nullptr) {
    (*p)->Finish(absl::UnavailableError("redis connection lost"));
  } else if (reply->type == REDIS_REPLY_ERROR) {
    (*p)->Finish(absl::FailedPreconditionError(
        fmt::format("redis: {}", std::string_view(reply->str, reply->len))));
  } else {
    (*p)->Finish(Convert(reply));
  }
  delete p;
}

}  // namespace

void RedisClient::Impl::Connect() {
  if (stopped) return;
  boost::system::error_code literal;
  asio::ip::make_address(options.host, literal);
  if (!literal) return ConnectTo(options.host);
  // Not hiredis's own lookup: getaddrinfo would block this thread (an I/O thread of the proxy)
  // for as long as DNS takes, at every reconnection. Asio resolves on a thread of its own.
  resolver.async_resolve(
      options.host, std::to_string(options.port),
      [this, alive = owner](const boost::system::error_code& ec,
                            const asio::ip::tcp::resolver::results_type& results) {
        if (alive.expired() || stopped) return;
        if (ec || results.empty()) {
          return Lost(
              fmt::format("resolving {}: {}", options.host, ec ? ec.message() : "no address"));
        }
        // hiredis takes one address: IPv4 first, which "localhost" may list after ::1 while
        // redis-server is often bound to 127.0.0.1 alone.
        auto v4 = std::find_if(results.begin(), results.end(),
                               [](const auto& r) { return r.endpoint().address().is_v4(); });
        ConnectTo((v4 != results.end() ? *v4 : *results.begin()).endpoint().address().to_string());
      });
}

void RedisClient::Impl::ConnectTo(const std::string& address) {
  context = redisAsyncConnect(address.c_str(), options.port);
  if (context == nullptr || context->err) {
    std::string why = context ? context->errstr : "out of memory";
    if (context) redisAsyncFree(context);
    context = nullptr;
    Lost(why);
    return;
  }
  // A connection that only listens (pub/sub) sends nothing the watchdog could time: TCP keep
  // alive is what tells it that a silent network dropped its peer.
  redisEnableKeepAlive(&context->c);
  context->data = this;
  context->ev.data = this;
  context->ev.addRead = AddRead;
  context->ev.delRead = DelRead;
  context->ev.addWrite = AddWrite;
  context->ev.delWrite = DelWrite;
  context->ev.cleanup = Cleanup;
  socket = std::make_unique<asio::posix::stream_descriptor>(io, context->c.fd);
  redisAsyncSetConnectCallback(context, OnConnected);
  redisAsyncSetDisconnectCallback(context, OnDisconnected);
  connect_started = Clock::now();
  ArmWatchdog();
  // A non-blocking connect completes when the socket is writable.
  AddWrite(this);
}

// A TCP connection is not yet a usable Redis: a stopped server still completes the handshake in
// the kernel, and one that asks for a password, or lacks the database, answers every command
// with an error. Connected means authenticated (when the URL has a password), the database
// selected and a PING answered.
void RedisClient::Impl::Handshake() {
  auto step = [this](std::string command, std::function<void()> next) {
    auto p = std::make_shared<Pending>();
    p->deadline = connect_started + options.connect_timeout;
    p->done = [this, command, next = std::move(next), alive = owner](absl::StatusOr<RedisReply> r) {
      if (alive.expired() || context == nullptr) return;
      // A lost connection answers with Unavailable; OnDisconnected takes care of that.
      if (!r.ok() && absl::IsUnavailable(r.status())) return;
      if (!r.ok() || r->type == RedisReply::Type::kError) return Refused(command, r);
      if (next) next();
    };
    return p;
  };
  auto ping = [this, step] { Send({"PING"}, step("PING", [this] { Ready(); })); };
  auto select = [this, step, ping] {
    if (options.db == 0) return ping();
    Send({"SELECT", std::to_string(options.db)}, step("SELECT", ping));
  };
  if (!options.password) return select();
  std::vector<std::string> auth = {"AUTH"};
  if (options.username) auth.push_back(*options.username);
  auth.push_back(*options.password);
  Send(std::move(auth), step("AUTH", select));
}

void RedisClient::Impl::Ready() {
  connected = true;
  ready_at = Clock::now();
  spdlog::info("redis {}:{} connected", options.host, options.port);
  SendSubscriptions();
  for (auto& f : on_connect)
    f();
}

void RedisClient::Impl::Refused(std::string_view command, const absl::StatusOr<RedisReply>& r) {
  spdlog::warn("redis {}:{}: {} failed: {}; not using this connection", options.host, options.port,
               command, r.ok() ? r->str : r.status().ToString());
  redisAsyncDisconnect(context);  // then OnDisconnected: reconnect after the backoff
}

// Drops the descriptor without closing it: hiredis closes it itself (a close here too would
// close whatever socket another thread had been given the number for in between).
void RedisClient::Impl::ForgetSocket() {
  if (!socket) return;
  boost::system::error_code ignored;
  socket->cancel(ignored);
  socket->release();
  socket.reset();
}

void RedisClient::Impl::ArmRead() {
  if (reading || !socket || !want_read) return;
  reading = true;
  socket->async_wait(asio::posix::stream_descriptor::wait_read,
                     [this, alive = owner](const boost::system::error_code& ec) {
                       if (alive.expired()) return;
                       reading = false;
                       if (ec || context == nullptr) return;
                       redisAsyncHandleRead(context);
                       ArmRead();
                     });
}

void RedisClient::Impl::ArmWrite() {
  if (writing || !socket || !want_write) return;
  writing = true;
  socket->async_wait(asio::posix::stream_descriptor::wait_write,
                     [this, alive = owner](const boost::system::error_code& ec) {
                       if (alive.expired()) return;
                       writing = false;
                       if (ec || context == nullptr) return;
                       redisAsyncHandleWrite(context);
                       ArmWrite();
                     });
}

void RedisClient::Impl::Lost(std::string_view why) {
  bool was_connected = connected;
  connected = false;
  // The backoff starts again only after a connection that lasted: a server that drops every
  // connection right after the handshake is not reconnected to ten times a second.
  if (was_connected && Clock::now() - ready_at >= kLastBackoff) backoff = kFirstBackoff;
  FailPending(absl::UnavailableError(fmt::format("redis: {}", why)));  // cannot be answered now
  if (was_connected) {
    spdlog::warn("redis {}:{}: {}; reconnecting", options.host, options.port, why);
    for (auto& f : on_disconnect)
      f();
  } else {
    spdlog::debug("redis {}:{}: {}", options.host, options.port, why);
  }
  ScheduleReconnect();
}

void RedisClient::Impl::ScheduleReconnect() {
  if (stopped) return;
  reconnect_timer.expires_after(backoff);
  backoff = std::min(backoff * 2, kLastBackoff);
  reconnect_timer.async_wait([this, alive = owner](const boost::system::error_code& ec) {
    if (!ec && !alive.expired() && context == nullptr) Connect();
  });
}

void RedisClient::Impl::ArmWatchdog() {
  watchdog.expires_after(std::chrono::milliseconds(50));
  watchdog.async_wait([this, alive = owner](const boost::system::error_code& ec) {
    if (ec || alive.expired() || context == nullptr) return;
    Clock::time_point now = Clock::now();
    // Replies come in order: the oldest call is the one that would be late first.
    while (!pending.empty() && !pending.front()->done)
      pending.pop_front();
    bool stuck = !pending.empty() && now > pending.front()->deadline;
    bool slow_connect = !connected && now - connect_started > options.connect_timeout;
    if (stuck || slow_connect) {
      if (stuck) pending.front()->Finish(absl::DeadlineExceededError("redis: call timed out"));
      if (context == nullptr) return;  // the callback stopped the client
      // Not redisAsyncDisconnect: it would wait for the replies a stuck server never sends.
      redisAsyncContext* c = context;
      context = nullptr;
      c->onDisconnect = nullptr;
      redisAsyncFree(c);  // answers the other pending calls with a null reply
      Lost(stuck ? "a call timed out" : "connect timed out");
      return;
    }
    ArmWatchdog();
  });
}

void RedisClient::Impl::Send(std::vector<std::string> args, std::shared_ptr<Pending> p) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* holder = new std::shared_ptr<Pending>(p);
  if (redisAsyncCommandArgv(context, OnReply, holder, static_cast<int>(argv.size()), argv.data(),
                            lengths.data()) != REDIS_OK) {
    delete holder;
    p->Finish(absl::UnavailableError("redis: command not sent"));
    return;
  }
  pending.push_back(std::move(p));
}

void RedisClient::Impl::SendSubscriptions() {
  for (auto& [channel, handler] : subscriptions) {
    MessageHandler* h = &handler;
    redisAsyncCommand(
        context,
        [](redisAsyncContext*, void* r, void* privdata) {
          auto* reply = static_cast<redisReply*>(r);
          // ["message", channel, payload] for each message; the first reply confirms.
          if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
          if (std::string_view(reply->element[0]->str, reply->element[0]->len) != "message") return;
          (*static_cast<MessageHandler*>(privdata))(
              std::string_view(reply->element[1]->str, reply->element[1]->len),
              std::string_view(reply->element[2]->str, reply->element[2]->len));
        },
        h, "SUBSCRIBE %b", channel.data(), channel.size());
  }
}

std::shared_ptr<RedisClient> RedisClient::Create(asio::io_context& io, RedisOptions options) {
  auto client =
      std::shared_ptr<RedisClient>(new RedisClient(std::make_unique<Impl>(io, std::move(options))));
  client->impl_->owner = client;
  return client;
}

RedisClient::RedisClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisClient::~RedisClient() {
  Stop();
}

void RedisClient::Start() {
  impl_->Connect();
}

void RedisClient::Stop() {
  impl_->stopped = true;
  impl_->reconnect_timer.cancel();
  impl_->watchdog.cancel();
  if (impl_->context != nullptr) {
    redisAsyncContext* c = impl_->context;
    impl_->context = nullptr;
    c->onDisconnect = nullptr;  // no reconnect, no callbacks into a client going away
    redisAsyncFree(c);          // pending callbacks get a null reply
  }
  impl_->connected = false;
  impl_->FailPending(absl::UnavailableError("redis client stopped"));
}

bool RedisClient::connected() const {
  return impl_->connected;
}

void RedisClient::Command(std::vector<std::string> args, Callback done) {
  auto p = std::make_shared<Impl::Pending>();
  p->done = std::move(done);
  p->deadline = Clock::now() + impl_->options.command_timeout;
  if (!impl_->connected || impl_->context == nullptr) {
    p->Finish(absl::UnavailableError("redis not connected"));
    return;
  }
  impl_->Send(std::move(args), std::move(p));
}

asio::awaitable<absl::StatusOr<RedisReply>> RedisClient::Call(std::vector<std::string> args) {
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                          void(absl::StatusOr<RedisReply>)>(
      [this](auto handler, std::vector<std::string> args) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        Command(std::move(args),
                [shared](absl::StatusOr<RedisReply> r) { (*shared)(std::move(r)); });
      },
      asio::use_awaitable, std::move(args));
}

void RedisClient::Subscribe(std::string channel, MessageHandler on_message) {
  impl_->subscriptions.emplace_back(std::move(channel), std::move(on_message));
}

void RedisClient::OnConnect(std::function<void()> f) {
  impl_->on_connect.push_back(std::move(f));
}
void RedisClient::OnDisconnect(std::function<void()> f) {
  impl_->on_disconnect.push_back(std::move(f));
}

}  // namespace state
