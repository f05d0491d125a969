// Micro benchmarks of the MQTT codec: decoding and encoding a PUBLISH, the broker's per-message
// work. Run: build/bin/micro_bench --benchmark_filter=Publish
#include <benchmark/benchmark.h>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace {

mqtt::Publish SamplePublish(size_t payload_bytes) {
  mqtt::Publish p;
  p.topic = "bench/pairs/12";
  p.payload.assign(payload_bytes, 'x');
  p.qos = mqtt::QoS::k1;
  p.packet_id = 42;
  return p;
}

void BM_DecodePublish(benchmark::State& state) {
  std::string bytes;
  mqtt::Encode(SamplePublish(state.range(0)), mqtt::Version::k5, bytes);
  for (auto _ : state) {
    auto frame = mqtt::ParseFrame(bytes, mqtt::kMaxPacketBytes);
    auto packet = mqtt::DecodePacket(**frame, mqtt::Version::k5);
    benchmark::DoNotOptimize(packet);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_DecodePublish)->Arg(64)->Arg(1024)->Arg(65536);

void BM_EncodePublishHeader(benchmark::State& state) {
  mqtt::Publish p = SamplePublish(state.range(0));
  std::string out;
  for (auto _ : state) {
    out.clear();
    mqtt::EncodePublishHeader(
        {.topic = p.topic, .qos = p.qos, .packet_id = p.packet_id, .properties = &p.properties},
        p.payload.size(), mqtt::Version::k5, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_EncodePublishHeader)->Arg(64)->Arg(1024);

void BM_EncodePublish(benchmark::State& state) {
  mqtt::Publish p = SamplePublish(state.range(0));
  std::string out;
  for (auto _ : state) {
    out.clear();
    mqtt::Encode(p, mqtt::Version::k5, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_EncodePublish)->Arg(64)->Arg(1024);

}  // namespace
