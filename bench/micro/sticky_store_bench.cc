// Micro benchmark of the proxy's in-process sticky table (state/local_sticky_store.h): binding a
// new client id in a table that already holds N live records, as every new client does.
// Run: build/bin/micro_bench --benchmark_filter=Sticky
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "state/local_sticky_store.h"

namespace {

void BM_StickyBindNew(benchmark::State& state) {
  using std::chrono::seconds;
  state::LocalStickyStore store;
  auto t0 = state::LocalStickyStore::Clock::now();
  for (int64_t i = 0; i < state.range(0); ++i)
    store.BindAt("pool", "held-" + std::to_string(i), "b1", true, seconds(3600), t0);
  int64_t n = 0;
  for (auto _ : state) {
    store.BindAt("pool", "new-" + std::to_string(n++), "b1", true, seconds(3600), t0);
  }
}
BENCHMARK(BM_StickyBindNew)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

}  // namespace
