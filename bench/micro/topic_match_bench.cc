// Micro benchmarks of subscription matching: one topic against a trie holding N unrelated
// subscriptions besides the ones that match. The cost should not grow with N.
// Run: build/bin/micro_bench --benchmark_filter=TrieMatch
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "backend/subscription_trie.h"
#include "mqtt/topic.h"

namespace {

void BM_TrieMatch(benchmark::State& state) {
  backend::SubscriptionTrie trie;
  const int64_t unrelated = state.range(0);
  for (int64_t i = 0; i < unrelated; ++i) {
    trie.Add(fmt::format("devices/{}/telemetry/+", i), "", {.session_id = uint64_t(i) + 10});
  }
  trie.Add("site/7/room/12/temp", "", {.session_id = 1});
  trie.Add("site/+/room/+/temp", "", {.session_id = 2});
  trie.Add("site/7/#", "", {.session_id = 3});
  size_t matched = 0;
  for (auto _ : state) {
    trie.Match("site/7/room/12/temp", [&](const backend::Subscriber&) { ++matched; });
  }
  benchmark::DoNotOptimize(matched);
  if (matched != 3 * static_cast<size_t>(state.iterations())) state.SkipWithError("wrong matches");
}
BENCHMARK(BM_TrieMatch)->Arg(10)->Arg(10'000)->Arg(1'000'000);

void BM_TopicMatchesFunction(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(mqtt::TopicMatches("site/+/room/+/temp", "site/7/room/12/temp"));
  }
}
BENCHMARK(BM_TopicMatchesFunction);

}  // namespace
