// Tests of backend/out_buffer.cc: bytes and payloads come out in the order they went in, large
// payloads are referenced rather than copied, partial writes are consumed across segments, and
// compaction keeps the content while reclaiming the written prefix. A random model test compares
// the buffer with a plain string under every mix of operations.
#include "backend/out_buffer.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace backend {
namespace {

MessagePtr Payload(std::string payload) {
  auto m = std::make_shared<Message>();
  m->topic = "t";
  m->payload = std::move(payload);
  return m;
}

// What one Gather offers, concatenated, and how many buffers it used.
struct Gathered {
  std::string text;
  size_t count = 0;
  std::array<boost::asio::const_buffer, OutBuffer::kMaxGather> buffers;
};
Gathered Gather(OutBuffer& out) {
  Gathered g;
  g.count = out.Gather(g.buffers.data());
  for (size_t i = 0; i < g.count; ++i) {
    g.text.append(static_cast<const char*>(g.buffers[i].data()), g.buffers[i].size());
  }
  return g;
}

TEST(OutBufferTest, StartsEmpty) {
  OutBuffer out;
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(Gather(out).count, 0u);
}

TEST(OutBufferTest, BytesAndPayloadsComeOutInOrder) {
  OutBuffer out;
  MessagePtr small = Payload("small");
  MessagePtr large = Payload(std::string(OutBuffer::kShareFromBytes, 'L'));
  out.bytes() += "H1";
  out.AppendPayload(small);
  out.bytes() += "H2";
  out.AppendPayload(large);
  out.bytes() += "H3";
  out.AppendPayload(large);
  std::string expected = "H1smallH2" + large->payload + "H3" + large->payload;
  EXPECT_EQ(out.size(), expected.size());
  Gathered g = Gather(out);
  EXPECT_EQ(g.text, expected);
  EXPECT_EQ(g.count, 4u);  // "H1smallH2", large, "H3", large
  // Gathering does not consume.
  EXPECT_EQ(Gather(out).text, expected);
  EXPECT_EQ(out.size(), expected.size());
}

TEST(OutBufferTest, LargePayloadsAreReferencedNotCopied) {
  OutBuffer out;
  MessagePtr below = Payload(std::string(OutBuffer::kShareFromBytes - 1, 'b'));
  MessagePtr at = Payload(std::string(OutBuffer::kShareFromBytes, 'a'));
  MessagePtr big = Payload(std::string(64 * 1024, 'g'));
  out.bytes() += "h";
  out.AppendPayload(below);
  out.AppendPayload(at);
  out.bytes() += "h";
  out.AppendPayload(big);
  Gathered g = Gather(out);
  ASSERT_EQ(g.count, 4u);
  // The small payload was copied in with the header before it.
  EXPECT_EQ(g.buffers[0].size(), 1 + below->payload.size());
  EXPECT_NE(g.buffers[0].data(), static_cast<const void*>(below->payload.data()));
  EXPECT_EQ(g.buffers[1].data(), static_cast<const void*>(at->payload.data()));
  EXPECT_EQ(g.buffers[1].size(), at->payload.size());
  EXPECT_EQ(g.buffers[3].data(), static_cast<const void*>(big->payload.data()));
  EXPECT_EQ(g.buffers[3].size(), big->payload.size());
}

TEST(OutBufferTest, ReferencedPayloadIsKeptAliveUntilWritten) {
  OutBuffer out;
  MessagePtr big = Payload(std::string(4096, 'g'));
  std::weak_ptr<const Message> watch = big;
  out.AppendPayload(big);
  big.reset();
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(Gather(out).text, std::string(4096, 'g'));
  out.Consume(4000);
  EXPECT_FALSE(watch.expired());
  out.Consume(96);
  EXPECT_TRUE(watch.expired());
  EXPECT_TRUE(out.empty());
}

TEST(OutBufferTest, SizeCountsBytesNotGatheredYet) {
  OutBuffer out;
  out.bytes() += "abc";
  EXPECT_EQ(out.size(), 3u);
  EXPECT_FALSE(out.empty());
  Gathered g = Gather(out);
  out.bytes() += "de";  // appended while "abc" is being written
  EXPECT_EQ(out.size(), 5u);
  out.Consume(g.text.size());
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(Gather(out).text, "de");
  out.Consume(2);
  EXPECT_TRUE(out.empty());
}

TEST(OutBufferTest, PartialConsumeAcrossSegments) {
  OutBuffer out;
  MessagePtr p1 = Payload(std::string(600, '1'));
  MessagePtr p2 = Payload(std::string(700, '2'));
  out.bytes() += "head";
  out.AppendPayload(p1);
  out.bytes() += "mid";
  out.AppendPayload(p2);
  out.bytes() += "tail";
  const std::string all = "head" + p1->payload + "mid" + p2->payload + "tail";
  std::string model = all;
  // Write in pieces that end inside segments, at their edges, and span three segments at once
  // (the end of "head", all of p1, the start of "mid").
  for (size_t n : {3, 602, 2, 699, 1, 2, 2}) {
    ASSERT_LE(n, model.size());
    Gathered g = Gather(out);
    ASSERT_EQ(g.text, model);
    out.Consume(n);
    model.erase(0, n);
    EXPECT_EQ(out.size(), model.size());
  }
  EXPECT_TRUE(model.empty());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(Gather(out).count, 0u);
  // The emptied buffer is used again from the start.
  out.bytes() += "again";
  EXPECT_EQ(Gather(out).text, "again");
}

TEST(OutBufferTest, GatherOffersAtMostMaxGatherBuffers) {
  OutBuffer out;
  MessagePtr p = Payload(std::string(OutBuffer::kShareFromBytes, 'p'));
  const size_t total = OutBuffer::kMaxGather + 36;
  for (size_t i = 0; i < total; ++i)
    out.AppendPayload(p);
  Gathered g = Gather(out);
  EXPECT_EQ(g.count, OutBuffer::kMaxGather);
  out.Consume(g.text.size());
  g = Gather(out);
  EXPECT_EQ(g.count, 36u);
  out.Consume(g.text.size());
  EXPECT_TRUE(out.empty());
}

TEST(OutBufferTest, CompactionKeepsTheContent) {
  OutBuffer out;
  // A large written prefix, a referenced payload, then bytes still to write.
  std::string prefix(100 * 1024, 'A');
  MessagePtr big = Payload(std::string(1024, 'B'));
  out.bytes() += prefix;
  out.AppendPayload(big);
  out.bytes() += "after-payload";
  Gathered g = Gather(out);
  out.bytes() += "not-gathered";  // appended during the write
  // Consume the prefix and half the payload: the live bytes now start far into the string.
  out.Consume(prefix.size() + 512);
  std::string expected = std::string(512, 'B') + "after-payload" + "not-gathered";
  EXPECT_EQ(out.size(), expected.size());
  EXPECT_EQ(Gather(out).text, expected);
  out.bytes() += "more";
  expected += "more";
  EXPECT_EQ(Gather(out).text, expected);
  out.Consume(530);  // the rest of the payload and into the bytes after it
  expected.erase(0, 530);
  EXPECT_EQ(Gather(out).text, expected);
  EXPECT_EQ(out.size(), expected.size());
}

TEST(OutBufferTest, CompactionWithOnlyBytes) {
  OutBuffer out;
  std::string written(200 * 1024, 'w');
  out.bytes() += written;
  out.bytes() += "kept";
  Gather(out);
  out.Consume(written.size() + 1);
  EXPECT_EQ(Gather(out).text, "ept");
  out.bytes() += "x";
  EXPECT_EQ(Gather(out).text, "eptx");
  EXPECT_EQ(out.size(), 4u);
}

// Random appends, gathers and partial consumes against a plain string, with sizes large enough to
// make the buffer compact many times.
TEST(OutBufferPropertyTest, BehavesLikeAString) {
  std::mt19937 rng(4242);
  OutBuffer out;
  std::string model;
  std::vector<MessagePtr> payloads;
  for (size_t size : {0, 1, 100, 511, 512, 513, 4096, 70'000}) {
    std::string p(size, '\0');
    for (char& c : p)
      c = static_cast<char>('a' + rng() % 26);
    payloads.push_back(Payload(p));
  }
  for (int step = 0; step < 20'000; ++step) {
    switch (rng() % 4) {
      case 0: {
        std::string b(rng() % (rng() % 8 == 0 ? 50'000 : 40), '\0');
        for (char& c : b)
          c = static_cast<char>('A' + rng() % 26);
        out.bytes() += b;
        model += b;
        break;
      }
      case 1: {
        const MessagePtr& p = payloads[rng() % payloads.size()];
        out.AppendPayload(p);
        model += p->payload;
        break;
      }
      default: {
        Gathered g = Gather(out);
        ASSERT_EQ(g.text, model.substr(0, g.text.size())) << "step " << step;
        if (g.text.empty()) break;
        size_t n = rng() % 3 == 0 ? g.text.size() : 1 + rng() % g.text.size();
        out.Consume(n);
        model.erase(0, n);
        break;
      }
    }
    ASSERT_EQ(out.size(), model.size()) << "step " << step;
  }
}

}  // namespace
}  // namespace backend
