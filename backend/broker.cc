// Broker lifecycle: start, run, shut down; and the admin endpoints.
#include "backend/broker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <random>

#include "backend/cluster.h"
#include "backend/metrics.h"
#include "backend/shard.h"
#include "base/metrics_text.h"
#include "net/http_server.h"
#include "net/io_threads.h"
#include "net/listen.h"

namespace backend {

namespace asio = boost::asio;

namespace {
// How often expired retained messages that no subscription reached are removed: a topic
// published once with an expiry and never again (a device's, say) does not stay in memory.
constexpr auto kRetainedSweep = std::chrono::seconds(1);
}  // namespace

Broker::Broker(BrokerConfig config)
    : config_(std::move(config)),
      access_(config_.acl),
      threads_(std::make_unique<net::IoThreads>(config_.threads, "shard")),
      retained_sweep_(threads_->context(0)) {
  for (size_t i = 0; i < threads_->size(); ++i) {
    shards_.push_back(
        std::make_unique<Shard>(*this, static_cast<uint32_t>(i), threads_->context(i)));
  }
  for (auto& shard : shards_)
    shard->ConnectShards();
}

Broker::~Broker() = default;

absl::Status Broker::Start() {
  absl::StatusOr<asio::ip::tcp::endpoint> endpoint = net::Resolve(config_.listen);
  if (!endpoint.ok()) return endpoint.status();
  // Every shard listens on the same address (SO_REUSEPORT); with port 0, the first shard's
  // port is the one all use.
  for (auto& shard : shards_) {
    if (absl::Status s = shard->Listen(*endpoint); !s.ok()) return s;
    endpoint->port(shard->port());
  }
  if (config_.admin) {
    admin_ = std::make_unique<net::HttpServer>(
        threads_->context(0), [this](const net::HttpRequest& r) -> net::HttpResponse {
          if (r.method != "GET") return {405, "text/plain", "use GET\n", {{"Allow", "GET"}}};
          if (r.path == "/healthz") {
            if (!accepting_) return {503, "text/plain", "shutting down\n"};
            if (cluster_ && !cluster_->ready()) return {503, "text/plain", "joining the cluster\n"};
            return {200, "text/plain", "ok\n"};
          }
          if (r.path == "/metrics") {
            return {200, std::string(base::kMetricsContentType), RenderMetrics()};
          }
          return {404, "text/plain", "not found\n"};
        });
    if (absl::Status s = admin_->Listen(*config_.admin); !s.ok()) return s;
  }
  if (!config_.cluster.redis_url.empty()) {
    // Where the other nodes reach this one: advertised, or the listener (then not a wildcard).
    asio::ip::tcp::endpoint advertise = *endpoint;
    if (config_.cluster.advertise) {
      absl::StatusOr<asio::ip::tcp::endpoint> a = net::Resolve(*config_.cluster.advertise);
      if (!a.ok()) return a.status();
      advertise = *a;
    } else if (advertise.address().is_unspecified()) {
      return absl::InvalidArgumentError(
          "cluster: listening on a wildcard address, set [cluster] advertise (or --advertise) to "
          "the address the other nodes reach this node at");
    }
    cluster_ = std::make_unique<Cluster>(*this, threads_->context(0), config_.cluster, config_.node,
                                         advertise);
    cluster_->Start();
  }
  SweepRetained();
  accepting_ = true;
  spdlog::info("node {} listening on {}:{} with {} threads{}", config_.node, config_.listen.host,
               port(), shards_.size(),
               admin_ ? fmt::format(", admin on {}:{}", config_.admin->host, admin_port()) : "");
  return absl::OkStatus();
}

void Broker::Run() {
  asio::signal_set signals(threads_->context(0), SIGTERM, SIGINT);
  signals.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", signal);
    Shutdown();
  });
  threads_->Run();
}

// Shutdown: each step on every shard before the next (shard.h). The process stops once every
// socket is closed (the final DISCONNECTs written) and Redis has answered, or two seconds in.
constexpr mqtt::ReasonCode kShutdownReason = mqtt::ReasonCode::kServerShuttingDown;

void Broker::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  accepting_ = false;
  shutdown_start_ = Clock::now();
  // Clients closed, their wills published.
  OnEveryShard(
      [](Shard& s, Done done) {
        s.CloseClients(kShutdownReason);
        done();
      },
      [this] { CloseLinks(); });
  StopWhenClosed();
}

void Broker::CloseLinks() {
  // The links to the other nodes closed once they have carried the wills there.
  OnEveryShard([deadline = shutdown_start_ + std::chrono::seconds(1)](
                   Shard& s, Done done) { s.CloseLinks(deadline, std::move(done)); },
               [this] { LeaveCluster(); });
}

void Broker::LeaveCluster() {
  // Out of the cluster; then the other nodes' links here closed, and what they brought written.
  if (cluster_) cluster_->Stop();
  OnEveryShard(
      [](Shard& s, Done done) {
        s.CloseNodeConnections(kShutdownReason);
        done();
      },
      [this] {
        if (!cluster_) return void(written_ = true);
        cluster_->Flush([this] { written_ = true; });
      });
}

void Broker::StopWhenClosed() {
  auto timer = std::make_shared<asio::steady_timer>(threads_->context(0));
  auto poll = std::make_shared<std::function<void()>>();
  *poll = [this, timer, poll] {
    if ((open_sockets_.load() == 0 && written_) ||
        Clock::now() >= shutdown_start_ + std::chrono::seconds(2)) {
      if (admin_) admin_->Close();
      threads_->Stop();
      *poll = nullptr;  // break the cycle
      return;
    }
    timer->expires_after(std::chrono::milliseconds(20));
    timer->async_wait([poll](const boost::system::error_code&) {
      if (*poll) (*poll)();
    });
  };
  asio::post(threads_->context(0), [poll] { (*poll)(); });
}

void Broker::OnEveryShard(std::function<void(Shard&, Done)> step, std::function<void()> then) {
  auto waiting = std::make_shared<std::atomic<size_t>>(shards_.size());
  Done finished = [this, waiting, then = std::move(then)] {
    if (--*waiting == 0) asio::post(threads_->context(0), then);
  };
  for (auto& shard : shards_)
    asio::post(shard->io(), [s = shard.get(), step, finished] { step(*s, finished); });
}

uint16_t Broker::port() const {
  return shards_.front()->port();
}
uint16_t Broker::admin_port() const {
  return admin_ ? admin_->port() : 0;
}

Shard& Broker::HomeShard(std::string_view client_id) {
  return *shards_[std::hash<std::string_view>{}(client_id) % shards_.size()];
}

void Broker::AnnounceRoutes(std::vector<std::pair<std::string, int>> deltas,
                            std::function<void()> done) {
  asio::post(threads_->context(0), [this, deltas = std::move(deltas), done = std::move(done)] {
    cluster_->LocalRoutes(deltas, done);
  });
}

void Broker::Retain(const MessagePtr& message) {
  RetainLocal(message);
  if (cluster_)
    asio::post(threads_->context(0), [this, message] { cluster_->RetainedChanged(message); });
}

void Broker::RetainLocal(const MessagePtr& message) {
  std::lock_guard lock(retained_mutex_);
  retained_.Set(message);
  retained_count_.store(static_cast<int64_t>(retained_.size()));
}

void Broker::SweepRetained() {
  retained_sweep_.expires_after(kRetainedSweep);
  retained_sweep_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    std::vector<MessagePtr> expired;
    {
      std::lock_guard lock(retained_mutex_);
      retained_.RemoveExpired(Clock::now(), [&](const MessagePtr& m) { expired.push_back(m); });
      retained_count_.store(static_cast<int64_t>(retained_.size()));
    }
    if (cluster_) {
      for (const MessagePtr& m : expired)
        cluster_->RetainedExpired(m->topic);
    }
    SweepRetained();
  });
}

std::vector<MessagePtr> Broker::MatchRetained(std::string_view filter, Clock::time_point now) {
  std::vector<MessagePtr> out;
  std::lock_guard lock(retained_mutex_);
  retained_.Match(filter, now, [&out](const MessagePtr& m) { out.push_back(m); });
  retained_count_.store(static_cast<int64_t>(retained_.size()));  // less what had expired
  return out;
}

std::string Broker::AssignClientId() {
  // Unique within this process, and across restarts and nodes with high probability.
  static const uint64_t kBoot = std::random_device{}();
  return fmt::format("sb-{}-{:x}-{}", config_.node, kBoot & 0xFFFFFF,
                     next_client_serial_.fetch_add(1));
}

std::optional<ClientSlot> Broker::ReserveClient() {
  // Compare and swap rather than check then add: handshakes on several threads may race for the
  // last place.
  auto max = static_cast<int64_t>(config_.limits.max_connections);
  int64_t taken = client_connections_.load();
  do {
    if (taken >= max) return std::nullopt;
  } while (!client_connections_.compare_exchange_weak(taken, taken + 1));
  return ClientSlot(&client_connections_);
}

uint32_t Broker::CapSessionExpiry(uint32_t requested_s) const {
  uint32_t cap = config_.limits.max_session_expiry_s;
  return cap == 0 ? requested_s : std::min(requested_s, cap);
}

std::string Broker::RenderMetrics() const {
  std::vector<const ShardMetrics*> blocks;
  for (const auto& s : shards_)
    blocks.push_back(&s->metrics());
  BrokerTotals totals{.retained = retained_count_.load(), .accepting = accepting_.load()};
  for (const auto& s : shards_)
    totals.shard_queue_bytes += static_cast<int64_t>(s->queued_for_other_shards());
  if (cluster_) {  // the admin server runs on the cluster's (control) thread
    totals.clustered = true;
    totals.redis_up = cluster_->connected();
    totals.nodes = static_cast<int64_t>(cluster_->peers()) + 1;
    totals.node_name_shared = cluster_->name_shared();
    totals.local_routes = static_cast<int64_t>(cluster_->local_routes());
    totals.remote_routes = static_cast<int64_t>(cluster_->remote_routes());
    totals.sessions_handed_out = static_cast<int64_t>(cluster_->sessions().handed_out());
    totals.sessions_taken_in = static_cast<int64_t>(cluster_->sessions().taken_in());
    totals.sessions_restored = static_cast<int64_t>(cluster_->sessions().restored());
  }
  return backend::RenderMetrics(blocks, totals);
}

}  // namespace backend
