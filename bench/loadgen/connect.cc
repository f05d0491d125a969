// The connect scenario: --clients loops, each connecting with its own client id, waiting for
// CONNACK, disconnecting, and starting over: the reconnect storm after a failover, and the cost
// of a connection through a proxy. Closed loop (--rate 0): each loop starts over at once. Open
// loop (--rate R): the loops share R cycles per second, each starting its cycles on a schedule
// (and at once when it falls behind). Measures cycles per second and CONNECT to CONNACK latency.
// A loop whose connection fails counts an error and retries after 10 ms.
#include <fmt/format.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include "bench/loadgen/client.h"
#include "bench/loadgen/histogram.h"
#include "bench/loadgen/process_stats.h"
#include "bench/loadgen/progress.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/scenarios.h"
#include "net/io_threads.h"

namespace loadgen {

namespace asio = boost::asio;
using Seconds = std::chrono::duration<double>;

namespace {

struct WorkerStats {
  Histogram latency;
  std::atomic<uint64_t> cycles{0};  // written by the worker only
  uint64_t measured_cycles = 0;
  uint64_t errors = 0;
  std::string last_error;
};

class ConnectRun {
 public:
  explicit ConnectRun(const Options& o) : o_(o), threads_(o.threads, "load"), stats_(o.threads) {}

  absl::StatusOr<boost::json::object> Run() {
    threads_.Start();
    connections_.assign(o_.clients, 0);
    for (uint32_t i = 0; i < o_.clients; ++i) {
      uint32_t w = i % threads_.size();
      retry_.push_back(std::make_unique<asio::steady_timer>(threads_.context(w)));
      // Open loop: spread the loops' first starts over one period.
      next_start_.push_back(Clock::now() +
                            std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(o_.rate > 0 ? i / o_.rate : 0)));
      asio::steady_timer& first = *retry_.back();
      first.expires_at(next_start_.back());
      first.async_wait([this, i, w](const boost::system::error_code& ec) {
        if (!ec) Cycle(i, w);
      });
    }
    Progress progress(o_.quiet, [this] {
      uint64_t c = 0;
      for (const WorkerStats& s : stats_)
        c += s.cycles.load(std::memory_order_relaxed);
      return std::pair{c, c};
    });
    progress.Phase("warmup", Seconds(o_.warmup_s));
    ProcessSample self_before = SampleSelf();
    std::vector<std::optional<ProcessSample>> watched_before, watched_after;
    for (pid_t pid : o_.watch_pids)
      watched_before.push_back(SampleProcess(pid));
    Clock::time_point start = Clock::now();
    measuring_ = true;
    progress.Phase("measure", Seconds(o_.duration_s));
    measuring_ = false;
    Clock::time_point end = Clock::now();
    ProcessSample self_after = SampleSelf();
    for (pid_t pid : o_.watch_pids)
      watched_after.push_back(SampleProcess(pid));
    stopping_ = true;
    threads_.Stop();
    threads_.Join();

    Histogram latency;
    uint64_t cycles = 0, errors = 0;
    std::string last_error;
    for (const WorkerStats& s : stats_) {
      latency.Merge(s.latency);
      cycles += s.measured_cycles;
      errors += s.errors;
      if (!s.last_error.empty()) last_error = s.last_error;
    }
    double seconds = Seconds(end - start).count();
    boost::json::object r;
    r["scenario"] = "connect";
    r["clients"] = o_.clients;
    r["fresh_ids"] = o_.fresh_ids;
    r["rate_target"] = o_.rate;
    r["seconds"] = seconds;
    r["cycles"] = cycles;
    r["cycles_per_s"] = static_cast<double>(cycles) / seconds;
    r["errors"] = errors;
    if (!last_error.empty()) r["last_error"] = last_error;
    r["latency"] = LatencyJson(latency);
    r["loadgen"] = LoadgenCpu(self_before, self_after, seconds, threads_.size());
    r["watched"] = WatchedProcesses(o_.watch_pids, watched_before, watched_after, 0);
    if (cycles == 0) {
      return absl::UnavailableError(
          fmt::format("no connection completed: {}", last_error.empty() ? "?" : last_error));
    }
    return r;
  }

 private:
  // Starts the loop's next cycle: at once in a closed loop, else at its scheduled time.
  void Next(uint32_t loop, uint32_t worker) {
    if (o_.rate <= 0) {
      asio::post(threads_.context(worker), [this, loop, worker] { Cycle(loop, worker); });
      return;
    }
    auto period = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(o_.clients) / o_.rate));
    Clock::time_point& at = next_start_[loop];
    at = std::max(at + period, Clock::now() - period);  // behind: catch up, but not in a burst
    asio::steady_timer& t = *retry_[loop];
    t.expires_at(at);
    t.async_wait([this, loop, worker](const boost::system::error_code& ec) {
      if (!ec) Cycle(loop, worker);
    });
  }

  void Cycle(uint32_t loop, uint32_t worker) {
    if (stopping_) return;
    std::string id = fmt::format("{}-{}", o_.client_prefix, loop);
    if (o_.fresh_ids) id += fmt::format("-{}", connections_[loop]++);
    ClientOptions co{.client_id = std::move(id),
                     .version = o_.version,
                     .keep_alive_s = o_.keep_alive_s,
                     .clean_start = !o_.persistent,
                     .session_expiry_s = o_.persistent ? 300u : 0u};
    WorkerStats& st = stats_[worker];
    ClientEvents ev;
    ev.connected = [this, loop, worker, &st](Client& c) {
      st.cycles.store(st.cycles.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      if (measuring_) {
        ++st.measured_cycles;
        st.latency.Record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(c.connect_latency()).count()));
      }
      c.Disconnect();
      Next(loop, worker);
    };
    ev.closed = [this, loop, worker, &st](Client&, const std::string& why) {
      if (measuring_) ++st.errors;
      st.last_error = why;
      asio::steady_timer& t = *retry_[loop];
      t.expires_after(std::chrono::milliseconds(10));
      t.async_wait([this, loop, worker](const boost::system::error_code& ec) {
        if (!ec) Cycle(loop, worker);
      });
    };
    auto client = std::make_shared<Client>(threads_.context(worker),
                                           o_.targets[loop % o_.targets.size()], co, std::move(ev));
    client->Connect();
  }

  const Options& o_;
  net::IoThreads threads_;
  std::vector<WorkerStats> stats_;
  std::vector<std::unique_ptr<asio::steady_timer>> retry_;  // also the open loop's schedule
  std::vector<Clock::time_point> next_start_;
  std::vector<uint64_t> connections_;  // per loop, for --fresh-ids; touched by its worker only
  std::atomic<bool> measuring_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace

absl::StatusOr<boost::json::object> RunConnect(const Options& options) {
  ConnectRun run(options);
  return run.Run();
}

}  // namespace loadgen
