// Report formatting.
#include "bench/loadgen/report.h"

#include <fmt/format.h>

#include <boost/json/serialize.hpp>
#include <fstream>
#include <utility>

namespace loadgen {

namespace json = boost::json;

json::object LatencyJson(const Histogram& latency) {
  auto us = [](double ns) { return ns / 1e3; };
  json::object lat;
  lat["count"] = latency.count();
  lat["min_us"] = us(static_cast<double>(latency.min()));
  lat["mean_us"] = us(latency.mean());
  for (auto [key, percent] : {std::pair{"p50_us", 50.0}, std::pair{"p90_us", 90.0},
                              std::pair{"p99_us", 99.0}, std::pair{"p999_us", 99.9}}) {
    lat[key] = us(static_cast<double>(latency.Percentile(percent)));
  }
  lat["max_us"] = us(static_cast<double>(latency.max()));
  return lat;
}

json::object LoadgenCpu(const ProcessSample& before, const ProcessSample& after, double seconds,
                        size_t threads) {
  double cpu = after.cpu_seconds - before.cpu_seconds;
  double cores = seconds > 0 ? cpu / seconds : 0;
  json::object o;
  o["cpu_seconds"] = cpu;
  o["cores"] = cores;
  o["threads"] = threads;
  o["saturated"] = cores >= 0.9 * static_cast<double>(threads);
  o["rss_kib"] = after.rss_kib;
  return o;
}

json::array WatchedProcesses(const std::vector<pid_t>& pids,
                             const std::vector<std::optional<ProcessSample>>& before,
                             const std::vector<std::optional<ProcessSample>>& after,
                             uint64_t messages) {
  json::array out;
  for (size_t i = 0; i < pids.size(); ++i) {
    json::object o;
    o["pid"] = pids[i];
    if (!before[i] || !after[i]) {
      o["error"] = "process not found";
    } else {
      double cpu = after[i]->cpu_seconds - before[i]->cpu_seconds;
      o["cpu_seconds"] = cpu;
      if (messages > 0) o["cpu_seconds_per_million"] = cpu / (static_cast<double>(messages) / 1e6);
      o["rss_kib_before"] = before[i]->rss_kib;
      o["rss_kib_after"] = after[i]->rss_kib;
    }
    out.push_back(std::move(o));
  }
  return out;
}

namespace {

double Num(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return 0;
}

}  // namespace

void PrintSummary(const json::object& r) {
  std::string scenario(r.at("scenario").as_string());
  fmt::print("\n{} over {:.1f} s\n", scenario, Num(r, "seconds"));
  auto row = [](std::string_view name, std::string value) {
    fmt::print("  {:<22} {}\n", name, value);
  };
  if (const json::value* lat = r.if_contains("latency")) {
    const json::object& l = lat->as_object();
    if (r.contains("sent")) {
      row("sent",
          fmt::format("{:.0f} msg/s ({:.0f} messages)", Num(r, "sent_per_s"), Num(r, "sent")));
      row("received", fmt::format("{:.0f} msg/s, {:.2f} MB/s ({:.0f} of {:.0f} expected)",
                                  Num(r, "received_per_s"), Num(r, "mb_per_s"), Num(r, "received"),
                                  Num(r, "expected")));
      row("lost / dup / reordered", fmt::format("{:.0f} / {:.0f} / {:.0f}", Num(r, "lost"),
                                                Num(r, "duplicates"), Num(r, "reordered")));
    } else {
      row("cycles", fmt::format("{:.0f} /s ({:.0f}), {:.0f} errors", Num(r, "cycles_per_s"),
                                Num(r, "cycles"), Num(r, "errors")));
    }
    row("latency p50 / p90", fmt::format("{:.1f} / {:.1f} us", Num(l, "p50_us"), Num(l, "p90_us")));
    row("latency p99 / p99.9",
        fmt::format("{:.1f} / {:.1f} us", Num(l, "p99_us"), Num(l, "p999_us")));
    row("latency max", fmt::format("{:.1f} us", Num(l, "max_us")));
  }
  if (r.contains("connections")) {
    row("connections",
        fmt::format("{:.0f} open in {:.2f} s", Num(r, "connections"), Num(r, "connect_seconds")));
  }
  const json::object& gen = r.at("loadgen").as_object();
  row("load generator",
      fmt::format("{:.2f} cores of {:.0f} threads{}", Num(gen, "cores"), Num(gen, "threads"),
                  gen.at("saturated").as_bool() ? " (SATURATED)" : ""));
  for (const json::value& w : r.at("watched").as_array()) {
    const json::object& o = w.as_object();
    if (o.contains("error")) {
      row(fmt::format("pid {:.0f}", Num(o, "pid")), "not found");
      continue;
    }
    std::string line = fmt::format("{:.2f} cpu s", Num(o, "cpu_seconds"));
    if (o.contains("cpu_seconds_per_million")) {
      line += fmt::format(" ({:.2f} per million msg)", Num(o, "cpu_seconds_per_million"));
    }
    line += fmt::format(", rss {:.0f} -> {:.0f} KiB", Num(o, "rss_kib_before"),
                        Num(o, "rss_kib_after"));
    if (o.contains("kib_per_connection")) {
      line += fmt::format(" ({:.2f} KiB per connection)", Num(o, "kib_per_connection"));
    }
    row(fmt::format("pid {:.0f}", Num(o, "pid")), line);
  }
  if (Num(r, "qos") >= 1 && Num(r, "lost") > 0) {
    fmt::print(stderr, "\nWARNING: {:.0f} QoS {:.0f} messages LOST: acknowledged delivery failed\n",
               Num(r, "lost"), Num(r, "qos"));
  }
  if (gen.at("saturated").as_bool()) {
    fmt::print(stderr,
               "\nWARNING: the load generator saturated its threads; these figures are a lower "
               "bound for the target. Add --threads or run it on another machine.\n");
  }
}

absl::Status WriteJson(const std::string& path, const json::object& result) {
  std::ofstream out(path);
  out << json::serialize(result) << "\n";
  if (!out) return absl::UnavailableError(fmt::format("cannot write {}", path));
  return absl::OkStatus();
}

}  // namespace loadgen
