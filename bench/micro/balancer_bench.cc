// Micro benchmarks of the balancer strategies: one pick over a pool of N backends, and building
// a Maglev table. Run: build/bin/micro_bench --benchmark_filter=Pick
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "balancer/maglev.h"
#include "balancer/strategy.h"

namespace {

struct Pool {
  explicit Pool(int n) {
    for (int i = 0; i < n; ++i)
      names.push_back("broker-" + std::to_string(i));
    for (int i = 0; i < n; ++i)
      views.push_back({names[i], uint32_t(1 + i % 3), true, uint64_t(i)});
  }
  std::vector<std::string> names;
  std::vector<balancer::BackendView> views;
};

void PickBench(benchmark::State& state, balancer::StrategyKind kind) {
  Pool pool(static_cast<int>(state.range(0)));
  auto strategy = balancer::MakeStrategy(kind, balancer::MaglevTable::kDefaultSize);
  balancer::PoolView view{pool.views, 1};
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i)
    keys.push_back("client-" + std::to_string(i));
  size_t k = 0;
  for (auto _ : state) {
    view.turn = k;  // one thread taking every turn; with more, a pick catches up one per thread
    benchmark::DoNotOptimize(strategy->Pick(view, keys[k++ & 1023], {}));
  }
}

void BM_PickWeightedRoundRobin(benchmark::State& s) {
  PickBench(s, balancer::StrategyKind::kWeightedRoundRobin);
}
void BM_PickLeastConnections(benchmark::State& s) {
  PickBench(s, balancer::StrategyKind::kLeastConnections);
}
void BM_PickSourceHash(benchmark::State& s) {
  PickBench(s, balancer::StrategyKind::kSourceHash);
}
BENCHMARK(BM_PickWeightedRoundRobin)->Arg(3)->Arg(32);
BENCHMARK(BM_PickLeastConnections)->Arg(3)->Arg(32);
BENCHMARK(BM_PickSourceHash)->Arg(3)->Arg(32);

void BM_MaglevBuild(benchmark::State& state) {
  Pool pool(static_cast<int>(state.range(0)));
  std::vector<balancer::MaglevTable::Entry> entries;
  for (const auto& v : pool.views)
    entries.push_back({v.name, v.weight});
  for (auto _ : state)
    benchmark::DoNotOptimize(balancer::MaglevTable::Build(entries));
}
BENCHMARK(BM_MaglevBuild)->Arg(3)->Arg(32)->Unit(benchmark::kMicrosecond);

}  // namespace
