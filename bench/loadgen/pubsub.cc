// The pub/sub scenarios. Topology by scenario:
//
//   pairs    N publishers, N subscribers; publisher i -> topic P/pairs/i -> subscriber i
//   fan-in   N publishers on P/fanin/i, one subscriber on P/fanin/+
//   fan-out  one publisher on P/fanout, N subscribers on it (a message is complete at N receipts)
//   shared   N publishers on P/shared/i, M subscribers in $share/bench/P/shared/+
//
// Closed loop (--rate 0): each publisher keeps --window messages in flight end to end and sends
// the next one when one is received (by all its subscribers, for fan-out); a message not received
// within one second frees its slot and counts as lost, so QoS 0 loss cannot stall the loop.
// Open loop (--rate R): publishers send R messages per second between them, at spread phases, on
// a tick of about one message per worker (between 50 us and 1 ms), so that the messages arrive one
// by one rather than in a burst from every publisher on the same tick (a 1 ms tick at 20,000 msg/s
// sent bursts of 20, and every target's p50 then measured how it orders a burst). Both wait at the
// end, up to --drain, for the measured messages in flight.
//
// Threads: every client lives on one worker thread. A subscriber's thread records latency; it
// sends each receipt (publisher, sequence) to the publisher's thread, which keeps the window and
// classifies the receipt as new, duplicate or reordered. Receipts cross threads in batches.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <future>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "bench/loadgen/client.h"
#include "bench/loadgen/connector.h"
#include "bench/loadgen/histogram.h"
#include "bench/loadgen/process_stats.h"
#include "bench/loadgen/progress.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/scenarios.h"
#include "bench/loadgen/sequence_tracker.h"
#include "bench/loadgen/stamp.h"
#include "net/io_threads.h"

namespace loadgen {

namespace asio = boost::asio;
using Seconds = std::chrono::duration<double>;

namespace {

constexpr auto kLossTimeout = std::chrono::seconds(1);

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Receipt {
  uint32_t publisher;
  uint32_t subscriber;
  uint64_t sequence;
  int64_t sent_ns;
};

// A stat written by one thread and read by the progress display.
struct Counter {
  std::atomic<uint64_t> v{0};
  void Add(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return v.load(std::memory_order_relaxed); }
};

struct Publisher {
  uint32_t id = 0;
  uint32_t worker = 0;
  std::shared_ptr<Client> client;
  std::string topic;
  uint64_t next_sequence = 0;
  struct Pending {
    uint32_t remaining;
    Clock::time_point sent_at;
  };
  absl::flat_hash_map<uint64_t, Pending> pending;           // closed loop only
  absl::flat_hash_map<uint32_t, SequenceTracker> trackers;  // by subscriber, or one (key 0)
  int64_t next_due_ns = 0;  // open loop: when its next message is due (0: not started)
};

struct Subscriber {
  uint32_t id = 0;
  uint32_t worker = 0;
  std::shared_ptr<Client> client;
  std::string filter;
};

// Per worker thread: what it measured, written by its thread only.
struct WorkerStats {
  Histogram latency;
  Counter sent;      // every publish
  Counter received;  // every application message
  uint64_t sent_measured = 0;
  uint64_t received_measured = 0;  // unique receipts of measured messages
  uint64_t duplicates = 0;
  uint64_t reordered = 0;
  uint64_t timed_out = 0;
  std::string error;
};

class PubSubRun {
 public:
  explicit PubSubRun(const Options& o) : o_(o), threads_(o.threads, "load"), stats_(o.threads) {
    outbox_.resize(threads_.size() * threads_.size());
    flush_scheduled_.resize(threads_.size());
    payload_.assign(o.payload_bytes, 'x');
  }

  absl::StatusOr<boost::json::object> Run();

 private:
  void BuildTopology();
  void OnMessage(Subscriber& s, const mqtt::Publish& p);
  void OnReceipts(uint32_t worker, std::vector<Receipt>& receipts);
  void SendReceipt(uint32_t from_worker, const Receipt& r);
  void FlushReceipts(uint32_t worker);
  void TryPublish(Publisher& p);
  // Publishes the next message stamped `stamp_ns`; false if the client refused it (QoS > 0
  // with its in-flight window full).
  bool PublishOne(Publisher& p, int64_t stamp_ns);
  void Tick(uint32_t worker);
  void ArmTick(uint32_t worker);
  bool Drained();

  const Options& o_;
  net::IoThreads threads_;
  std::vector<WorkerStats> stats_;
  std::vector<std::unique_ptr<Publisher>> publishers_;
  std::vector<std::unique_ptr<Subscriber>> subscribers_;
  std::vector<std::unique_ptr<asio::steady_timer>> ticks_;
  std::chrono::microseconds tick_{1000};
  int64_t period_ns_ = 0;  // open loop: between two messages of one publisher
  uint32_t receipts_per_message_ = 1;
  bool per_subscriber_tracking_ = false;
  bool loopback_ = false;  // publisher i and subscriber i share one client
  // outbox_[from * T + to]: receipts on their way from worker `from` to worker `to`.
  std::vector<std::vector<Receipt>> outbox_;
  std::vector<char> flush_scheduled_;
  std::string payload_;  // filler; the stamp is written per message into a copy per worker
  std::atomic<bool> publishing_{false};
  std::atomic<int64_t> measure_from_ns_{INT64_MAX};
  std::atomic<int64_t> measure_until_ns_{INT64_MAX};
};

void PubSubRun::BuildTopology() {
  const std::string& p = o_.topic_prefix;
  uint32_t T = static_cast<uint32_t>(threads_.size());
  auto add_pub = [&](std::string topic, uint32_t worker) {
    auto pub = std::make_unique<Publisher>();
    pub->id = static_cast<uint32_t>(publishers_.size());
    pub->worker = worker % T;
    pub->topic = std::move(topic);
    publishers_.push_back(std::move(pub));
  };
  auto add_sub = [&](std::string filter, uint32_t worker) {
    auto sub = std::make_unique<Subscriber>();
    sub->id = static_cast<uint32_t>(subscribers_.size());
    sub->worker = worker % T;
    sub->filter = std::move(filter);
    subscribers_.push_back(std::move(sub));
  };
  switch (o_.scenario) {
    case Scenario::kPairs:
      for (uint32_t i = 0; i < o_.clients; ++i) {
        add_pub(fmt::format("{}/pairs/{}", p, i), i);
        add_sub(fmt::format("{}/pairs/{}", p, i), i);  // same thread as its publisher
      }
      break;
    case Scenario::kLoopback:
      // Publisher i and subscriber i are one client (see Run).
      for (uint32_t i = 0; i < o_.clients; ++i) {
        add_pub(fmt::format("{}/loopback/{}", p, i), i);
        add_sub(fmt::format("{}/loopback/{}", p, i), i);
      }
      loopback_ = true;
      break;
    case Scenario::kFanIn:
      for (uint32_t i = 0; i < o_.clients; ++i)
        add_pub(fmt::format("{}/fanin/{}", p, i), i);
      add_sub(fmt::format("{}/fanin/+", p), 0);
      break;
    case Scenario::kFanOut:
      add_pub(fmt::format("{}/fanout", p), 0);
      for (uint32_t i = 0; i < o_.clients; ++i)
        add_sub(fmt::format("{}/fanout", p), i);
      receipts_per_message_ = o_.clients;
      per_subscriber_tracking_ = true;
      break;
    case Scenario::kShared: {
      for (uint32_t i = 0; i < o_.clients; ++i)
        add_pub(fmt::format("{}/shared/{}", p, i), i);
      uint32_t members = o_.subscribers ? o_.subscribers : o_.clients;
      for (uint32_t i = 0; i < members; ++i)
        add_sub(fmt::format("$share/bench/{}/shared/+", p), i);
      break;
    }
    default:
      break;
  }
}

void PubSubRun::OnMessage(Subscriber& s, const mqtt::Publish& p) {
  WorkerStats& st = stats_[s.worker];
  st.received.Add();
  std::optional<Stamp> stamp = ReadStamp(p.payload);
  if (!stamp || stamp->publisher >= publishers_.size()) return;
  int64_t now = NowNs();
  if (stamp->sent_ns >= measure_from_ns_.load(std::memory_order_relaxed) &&
      stamp->sent_ns < measure_until_ns_.load(std::memory_order_relaxed)) {
    st.latency.Record(static_cast<uint64_t>(std::max<int64_t>(now - stamp->sent_ns, 0)));
  }
  SendReceipt(s.worker, {stamp->publisher, s.id, stamp->sequence, stamp->sent_ns});
}

void PubSubRun::SendReceipt(uint32_t from, const Receipt& r) {
  uint32_t to = publishers_[r.publisher]->worker;
  uint32_t T = static_cast<uint32_t>(threads_.size());
  outbox_[from * T + to].push_back(r);
  if (flush_scheduled_[from]) return;
  flush_scheduled_[from] = 1;
  // After the read that produced them: one post per destination thread, not one per message.
  asio::post(threads_.context(from), [this, from] { FlushReceipts(from); });
}

void PubSubRun::FlushReceipts(uint32_t from) {
  flush_scheduled_[from] = 0;
  uint32_t T = static_cast<uint32_t>(threads_.size());
  for (uint32_t to = 0; to < T; ++to) {
    std::vector<Receipt>& box = outbox_[from * T + to];
    if (box.empty()) continue;
    if (to == from) {
      OnReceipts(to, box);
      box.clear();
      continue;
    }
    asio::post(threads_.context(to),
               [this, to, batch = std::move(box)]() mutable { OnReceipts(to, batch); });
    box.clear();
  }
}

void PubSubRun::OnReceipts(uint32_t worker, std::vector<Receipt>& receipts) {
  WorkerStats& st = stats_[worker];
  int64_t from = measure_from_ns_.load(std::memory_order_relaxed);
  int64_t until = measure_until_ns_.load(std::memory_order_relaxed);
  for (const Receipt& r : receipts) {
    Publisher& p = *publishers_[r.publisher];
    SequenceTracker& tracker = p.trackers[per_subscriber_tracking_ ? r.subscriber : 0];
    SequenceTracker::Result result = tracker.Receive(r.sequence);
    bool measured = r.sent_ns >= from && r.sent_ns < until;
    if (result == SequenceTracker::Result::kDuplicate) {
      if (measured) ++st.duplicates;
      continue;
    }
    if (measured) {
      ++st.received_measured;
      if (result == SequenceTracker::Result::kReordered) ++st.reordered;
    }
    auto it = p.pending.find(r.sequence);
    if (it != p.pending.end() && --it->second.remaining == 0) {
      p.pending.erase(it);
      TryPublish(p);
    }
  }
}

void PubSubRun::TryPublish(Publisher& p) {
  if (o_.rate > 0) return;  // open loop: the tick publishes
  while (publishing_.load(std::memory_order_relaxed) && p.pending.size() < o_.window &&
         p.client->connected()) {
    if (o_.qos != mqtt::QoS::k0 && p.client->inflight() >= p.client->receive_maximum()) return;
    p.pending[p.next_sequence] = {receipts_per_message_, Clock::now()};
    PublishOne(p, NowNs());
  }
}

bool PubSubRun::PublishOne(Publisher& p, int64_t stamp_ns) {
  WorkerStats& st = stats_[p.worker];
  thread_local std::string payload;
  if (payload.size() != payload_.size()) payload = payload_;
  WriteStamp({p.id, p.next_sequence, stamp_ns}, payload);
  if (!p.client->Publish(p.topic, payload, o_.qos)) return false;
  ++p.next_sequence;
  st.sent.Add();
  if (stamp_ns >= measure_from_ns_.load(std::memory_order_relaxed) &&
      stamp_ns < measure_until_ns_.load(std::memory_order_relaxed)) {
    ++st.sent_measured;
  }
  return true;
}

// Every tick_: the open loop's pacing, and the closed loop's loss timeout.
void PubSubRun::Tick(uint32_t worker) {
  Clock::time_point now = Clock::now();
  int64_t now_ns = NowNs();
  bool publishing = publishing_.load(std::memory_order_relaxed);
  for (auto& pub : publishers_) {
    Publisher& p = *pub;
    if (p.worker != worker || !p.client || !p.client->connected()) continue;
    if (o_.rate > 0) {
      if (!publishing) continue;
      // Publishers start at evenly spread phases of their period, so that the rate is smooth
      // rather than a burst from every publisher on the same tick.
      if (p.next_due_ns == 0) p.next_due_ns = now_ns + period_ns_ * p.id / publishers_.size();
      // Every message that is due goes out, each stamped with the time it was due rather than
      // sent (wrk2's correction for coordinated omission): a late tick, or a window full of
      // unacknowledged messages, delays the message as the system under test would have, and
      // counts in its latency instead of vanishing from it.
      while (p.next_due_ns <= now_ns && PublishOne(p, p.next_due_ns))
        p.next_due_ns += period_ns_;
      continue;
    }
    bool freed = false;
    for (auto it = p.pending.begin(); it != p.pending.end();) {
      if (now - it->second.sent_at > kLossTimeout) {
        ++stats_[worker].timed_out;
        p.pending.erase(it++);
        freed = true;
      } else {
        ++it;
      }
    }
    if (freed) TryPublish(p);
  }
  ArmTick(worker);
}

void PubSubRun::ArmTick(uint32_t worker) {
  asio::steady_timer& t = *ticks_[worker];
  t.expires_after(tick_);
  t.async_wait([this, worker](const boost::system::error_code& ec) {
    if (!ec) Tick(worker);
  });
}

bool PubSubRun::Drained() {
  // Each worker checks its own publishers, on its own thread: the closed loop's windows are
  // empty; in the open loop, every measured message has all its receipts.
  bool drained = true;
  for (size_t w = 0; w < threads_.size(); ++w) {
    std::promise<bool> answer;
    asio::post(threads_.context(w), [&, w] {
      bool empty = true;
      if (o_.rate > 0) {
        const WorkerStats& st = stats_[w];
        empty = st.received_measured >= st.sent_measured * receipts_per_message_;
      }
      for (auto& p : publishers_) {
        if (o_.rate == 0 && p->worker == w && !p->pending.empty()) empty = false;
      }
      answer.set_value(empty);
    });
    drained = answer.get_future().get() && drained;
  }
  return drained;
}

absl::StatusOr<boost::json::object> PubSubRun::Run() {
  BuildTopology();
  if (o_.rate > 0) {
    period_ns_ = static_cast<int64_t>(1e9 * static_cast<double>(publishers_.size()) / o_.rate);
    double per_worker_per_s = o_.rate / static_cast<double>(threads_.size());
    tick_ = std::clamp(std::chrono::microseconds(static_cast<int64_t>(1e6 / per_worker_per_s)),
                       std::chrono::microseconds(50), std::chrono::microseconds(1000));
  }
  threads_.Start();
  for (size_t i = 0; i < threads_.size(); ++i) {
    ticks_.push_back(std::make_unique<asio::steady_timer>(threads_.context(i)));
  }

  // Subscribers first, each subscribed before any publisher connects.
  Connector subs(o_.connect_concurrency);
  size_t target = 0;
  for (auto& s : subscribers_) {
    Subscriber* sub = s.get();
    ClientOptions co{.client_id = fmt::format("{}-sub-{}", o_.client_prefix, sub->id),
                     .version = o_.version,
                     .keep_alive_s = o_.keep_alive_s,
                     .clean_start = !o_.persistent,
                     .session_expiry_s = o_.persistent ? 300u : 0u};
    ClientEvents ev;
    ev.connected = [sub, this](Client& c) { c.Subscribe(sub->filter, o_.qos); };
    ev.subscribed = subs.Done();
    ev.message = [this, sub](Client&, const mqtt::Publish& p) { OnMessage(*sub, p); };
    if (loopback_) {
      Publisher* pub = publishers_[sub->id].get();
      ev.published = [this, pub](Client&) { TryPublish(*pub); };
    }
    ev.closed = subs.Failed(&stats_[sub->worker].error);
    sub->client = std::make_shared<Client>(threads_.context(sub->worker),
                                           o_.targets[target++ % o_.targets.size()], co, ev);
    subs.Add(threads_.context(sub->worker), sub->client);
  }
  if (absl::Status s = subs.Wait(std::chrono::seconds(60), "subscribers"); !s.ok()) {
    threads_.Stop();
    threads_.Join();
    return s;
  }

  Connector pubs(o_.connect_concurrency);
  const auto& pub_targets = o_.publisher_targets.empty() ? o_.targets : o_.publisher_targets;
  if (!o_.publisher_targets.empty()) target = 0;
  for (auto& pp : publishers_) {
    Publisher* pub = pp.get();
    if (loopback_) {
      pub->client = subscribers_[pub->id]->client;  // connected and subscribed already
      continue;
    }
    ClientOptions co{.client_id = fmt::format("{}-pub-{}", o_.client_prefix, pub->id),
                     .version = o_.version,
                     .keep_alive_s = o_.keep_alive_s,
                     .clean_start = !o_.persistent,
                     .session_expiry_s = o_.persistent ? 300u : 0u};
    ClientEvents ev;
    ev.connected = pubs.Done();
    ev.published = [this, pub](Client&) { TryPublish(*pub); };  // the broker's window opened
    ev.closed = pubs.Failed(&stats_[pub->worker].error);
    pub->client = std::make_shared<Client>(threads_.context(pub->worker),
                                           pub_targets[target++ % pub_targets.size()], co, ev);
    pubs.Add(threads_.context(pub->worker), pub->client);
  }
  if (absl::Status s = pubs.Wait(std::chrono::seconds(60), "publishers"); !s.ok()) {
    threads_.Stop();
    threads_.Join();
    return s;
  }

  // Warm up, measure, drain. The measured window is fixed before anyone publishes (the posts
  // below order these stores before the publishers' reads): a publisher stamping a message just
  // as the window opens or closes compares against the same bounds as the receipt later does
  // (bounds stored only at those moments could be missed by one and seen by the other, and count
  // a message as received but not sent, or sent but never received).
  int64_t from_ns = NowNs() + static_cast<int64_t>(o_.warmup_s * 1e9);
  measure_until_ns_ = from_ns + static_cast<int64_t>(o_.duration_s * 1e9);
  measure_from_ns_ = from_ns;
  publishing_ = true;
  for (size_t w = 0; w < threads_.size(); ++w) {
    asio::post(threads_.context(w), [this, w] {
      for (auto& p : publishers_) {
        if (p->worker == w) TryPublish(*p);
      }
      ArmTick(static_cast<uint32_t>(w));
    });
  }
  Progress progress(o_.quiet, [this] {
    uint64_t sent = 0, received = 0;
    for (const WorkerStats& s : stats_) {
      sent += s.sent.value();
      received += s.received.value();
    }
    return std::pair{sent, received};
  });
  progress.Phase("warmup", Seconds(o_.warmup_s));
  ProcessSample self_before = SampleSelf();
  std::vector<std::optional<ProcessSample>> watched_before;
  for (pid_t pid : o_.watch_pids)
    watched_before.push_back(SampleProcess(pid));
  Clock::time_point start = Clock::now();
  progress.Phase("measure", Seconds(o_.duration_s));
  Clock::time_point end = Clock::now();
  ProcessSample self_after = SampleSelf();
  std::vector<std::optional<ProcessSample>> watched_after;
  for (pid_t pid : o_.watch_pids)
    watched_after.push_back(SampleProcess(pid));
  publishing_ = false;
  // Drain: wait until every message in flight has arrived, up to --drain seconds.
  auto drain_deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(Seconds(o_.drain_s));
  while (!Drained() && Clock::now() < drain_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (size_t w = 0; w < threads_.size(); ++w) {
    asio::post(threads_.context(w), [this, w] {
      ticks_[w]->cancel();
      for (auto& p : publishers_) {
        if (p->worker == w && !loopback_)
          p->client->Disconnect();  // a loopback client goes with its subscriber
      }
      for (auto& s : subscribers_) {
        if (s->worker == w) s->client->Disconnect();
      }
    });
  }
  threads_.Stop();
  threads_.Join();

  // Totals.
  Histogram latency;
  uint64_t sent = 0, received = 0, duplicates = 0, reordered = 0, timed_out = 0;
  std::string errors;
  for (const WorkerStats& s : stats_) {
    latency.Merge(s.latency);
    sent += s.sent_measured;
    received += s.received_measured;
    duplicates += s.duplicates;
    reordered += s.reordered;
    timed_out += s.timed_out;
    if (!s.error.empty()) errors = s.error;
  }
  double seconds = o_.duration_s;                   // the window the counts cover
  double sampled_s = Seconds(end - start).count();  // the CPU samples' interval
  uint64_t expected = sent * receipts_per_message_;
  boost::json::object r;
  r["scenario"] = o_.scenario_name;
  r["qos"] = static_cast<int>(o_.qos);
  r["payload_bytes"] = o_.payload_bytes;
  r["clients"] = o_.clients;
  r["publishers"] = publishers_.size();
  r["subscribers"] = subscribers_.size();
  r["mode"] = o_.rate > 0 ? "open" : "closed";
  r["window"] = o_.window;
  r["rate_target"] = o_.rate;
  r["seconds"] = seconds;
  r["sent"] = sent;
  r["expected"] = expected;
  r["received"] = received;
  r["lost"] = expected > received ? expected - received : 0;
  r["duplicates"] = duplicates;
  r["reordered"] = reordered;
  r["timed_out"] = timed_out;
  r["sent_per_s"] = static_cast<double>(sent) / seconds;
  r["received_per_s"] = static_cast<double>(received) / seconds;
  r["mb_per_s"] = static_cast<double>(received) * o_.payload_bytes / seconds / 1e6;
  r["latency"] = LatencyJson(latency);
  r["loadgen"] = LoadgenCpu(self_before, self_after, sampled_s, threads_.size());
  r["watched"] = WatchedProcesses(o_.watch_pids, watched_before, watched_after, received);
  if (!errors.empty()) r["last_client_error"] = errors;
  return r;
}

}  // namespace

absl::StatusOr<boost::json::object> RunPubSub(const Options& options) {
  PubSubRun run(options);
  return run.Run();
}

}  // namespace loadgen
