// The idle scenario: open --clients connections, hold them for --duration while they only keep
// alive, and report the resident memory of the --watch-pid processes before the connections and
// after holding them: the memory each idle connection costs the broker or proxy.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <thread>

#include "bench/loadgen/client.h"
#include "bench/loadgen/connector.h"
#include "bench/loadgen/process_stats.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/scenarios.h"
#include "net/io_threads.h"

namespace loadgen {

using Seconds = std::chrono::duration<double>;

absl::StatusOr<boost::json::object> RunIdle(const Options& o) {
  net::IoThreads threads(o.threads, "load");
  threads.Start();
  std::vector<std::optional<ProcessSample>> before, after;
  for (pid_t pid : o.watch_pids)
    before.push_back(SampleProcess(pid));
  ProcessSample self_before = SampleSelf();

  std::vector<std::shared_ptr<Client>> clients;
  std::vector<std::string> errors(threads.size());
  Connector connector(o.connect_concurrency);
  Clock::time_point start = Clock::now();
  for (uint32_t i = 0; i < o.clients; ++i) {
    size_t w = i % threads.size();
    ClientOptions co{.client_id = fmt::format("{}-idle-{}", o.client_prefix, i),
                     .version = o.version,
                     .keep_alive_s = o.keep_alive_s,
                     .clean_start = !o.persistent,
                     .session_expiry_s = o.persistent ? 300u : 0u};
    ClientEvents ev;
    ev.connected = connector.Done();
    ev.closed = connector.Failed(&errors[w]);
    clients.push_back(
        std::make_shared<Client>(threads.context(w), o.targets[i % o.targets.size()], co, ev));
    connector.Add(threads.context(w), clients.back());
  }
  absl::Status connected = connector.Wait(std::chrono::seconds(300), "connections");
  double connect_seconds = Seconds(Clock::now() - start).count();
  if (connected.ok()) {
    if (!o.quiet) {
      fmt::print(stderr, "{} connections open in {:.2f} s; holding them {:.0f} s\n", o.clients,
                 connect_seconds, o.duration_s);
    }
    std::this_thread::sleep_for(Seconds(o.duration_s));
  }
  for (pid_t pid : o.watch_pids)
    after.push_back(SampleProcess(pid));
  ProcessSample self_after = SampleSelf();
  threads.Stop();
  threads.Join();
  if (!connected.ok()) return connected;

  boost::json::object r;
  r["scenario"] = "idle";
  r["connections"] = o.clients;
  r["connect_seconds"] = connect_seconds;
  r["seconds"] = o.duration_s;
  boost::json::array watched = WatchedProcesses(o.watch_pids, before, after, 0);
  for (boost::json::value& w : watched) {
    boost::json::object& obj = w.as_object();
    if (obj.contains("error")) continue;
    double grown =
        static_cast<double>(obj["rss_kib_after"].as_int64() - obj["rss_kib_before"].as_int64());
    obj["kib_per_connection"] = grown / o.clients;
  }
  r["watched"] = std::move(watched);
  r["loadgen"] = LoadgenCpu(self_before, self_after, o.duration_s, threads.size());
  return r;
}

}  // namespace loadgen
