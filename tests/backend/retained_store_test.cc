// Tests of backend/retained_store.cc: one retained message per topic, deletion by an empty payload
// (MQTT 5.0 §3.3.1.3), matching by the filters of new subscriptions with the rules of §4.7, expiry,
// and pruning of deleted topics. Checked against mqtt::TopicMatches on a set of topics too.
#include "backend/retained_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mqtt/topic.h"

namespace backend {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const Clock::time_point kNow = Clock::time_point() + std::chrono::hours(1);

MessagePtr Retained(std::string topic, std::string payload = "x",
                    std::optional<Clock::time_point> expires_at = std::nullopt) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->retain = true;
  m->expires_at = expires_at;
  return m;
}

// The topics of the retained messages matching `filter`, sorted.
std::vector<std::string> Topics(RetainedStore& store, std::string_view filter,
                                Clock::time_point now = kNow) {
  std::vector<std::string> out;
  store.Match(filter, now, [&](const MessagePtr& m) { out.push_back(m->topic); });
  std::sort(out.begin(), out.end());
  return out;
}

TEST(RetainedStoreTest, SetReplaceAndDelete) {
  RetainedStore store;
  EXPECT_EQ(store.size(), 0u);
  store.Set(Retained("a/b", "one"));
  EXPECT_EQ(store.size(), 1u);
  store.Set(Retained("a/b", "two"));  // replaces
  EXPECT_EQ(store.size(), 1u);
  std::vector<std::string> payloads;
  store.Match("a/b", kNow, [&](const MessagePtr& m) { payloads.push_back(m->payload); });
  EXPECT_THAT(payloads, ElementsAre("two"));

  store.Set(Retained("a", "parent"));  // a topic that is a prefix of another one
  EXPECT_EQ(store.size(), 2u);
  EXPECT_THAT(Topics(store, "a"), ElementsAre("a"));

  store.Set(Retained("a/b", ""));  // an empty payload deletes
  EXPECT_EQ(store.size(), 1u);
  EXPECT_THAT(Topics(store, "a/b"), IsEmpty());
  EXPECT_THAT(Topics(store, "a"), ElementsAre("a"));
  store.Set(Retained("a/b", ""));  // deleting again changes nothing
  store.Set(Retained("x/y/z", ""));
  store.Set(Retained("a/b/c", ""));
  EXPECT_EQ(store.size(), 1u);
  store.Set(Retained("a", ""));
  EXPECT_EQ(store.size(), 0u);
  EXPECT_THAT(Topics(store, "#"), IsEmpty());
}

TEST(RetainedStoreTest, DeletingAParentKeepsItsChildren) {
  RetainedStore store;
  store.Set(Retained("a"));
  store.Set(Retained("a/b"));
  store.Set(Retained("a/b/c"));
  store.Set(Retained("a/b", ""));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_THAT(Topics(store, "a/#"), ElementsAre("a", "a/b/c"));
  store.Set(Retained("a/b/c", ""));
  EXPECT_THAT(Topics(store, "a/#"), ElementsAre("a"));
  store.Set(Retained("a/b/c", "again"));
  EXPECT_THAT(Topics(store, "a/#"), ElementsAre("a", "a/b/c"));
}

TEST(RetainedStoreTest, ExactFilters) {
  RetainedStore store;
  for (const char* t : {"a", "a/b", "a/b/c", "a//c", "/", "a/"})
    store.Set(Retained(t));
  EXPECT_THAT(Topics(store, "a/b"), ElementsAre("a/b"));
  EXPECT_THAT(Topics(store, "a//c"), ElementsAre("a//c"));
  EXPECT_THAT(Topics(store, "/"), ElementsAre("/"));
  EXPECT_THAT(Topics(store, "a/"), ElementsAre("a/"));
  EXPECT_THAT(Topics(store, "b"), IsEmpty());
  EXPECT_THAT(Topics(store, "a/b/c/d"), IsEmpty());
}

TEST(RetainedStoreTest, PlusMatchesOneLevelIncludingAnEmptyOne) {
  RetainedStore store;
  for (const char* t : {"sport/tennis/player1", "sport//player1", "sport/player1",
                        "sport/a/b/player1", "sport/tennis/player2"}) {
    store.Set(Retained(t));
  }
  EXPECT_THAT(Topics(store, "sport/+/player1"),
              ElementsAre("sport//player1", "sport/tennis/player1"));
  EXPECT_THAT(Topics(store, "+/+"), ElementsAre("sport/player1"));
  EXPECT_THAT(Topics(store, "+/+/+/+"), ElementsAre("sport/a/b/player1"));
  EXPECT_THAT(Topics(store, "+"), IsEmpty());
}

TEST(RetainedStoreTest, HashMatchesTheParentLevelAndEverythingBelow) {
  RetainedStore store;
  for (const char* t : {"sport", "sport/tennis", "sport/tennis/player1", "sports", "/x"}) {
    store.Set(Retained(t));
  }
  EXPECT_THAT(Topics(store, "sport/#"),
              ElementsAre("sport", "sport/tennis", "sport/tennis/player1"));
  EXPECT_THAT(Topics(store, "sport/tennis/#"), ElementsAre("sport/tennis", "sport/tennis/player1"));
  EXPECT_THAT(Topics(store, "#"),
              ElementsAre("/x", "sport", "sport/tennis", "sport/tennis/player1", "sports"));
  EXPECT_THAT(Topics(store, "+/#"),
              ElementsAre("/x", "sport", "sport/tennis", "sport/tennis/player1", "sports"));
  EXPECT_THAT(Topics(store, "+/tennis/#"), ElementsAre("sport/tennis", "sport/tennis/player1"));
  EXPECT_THAT(Topics(store, "/#"), ElementsAre("/x"));
  EXPECT_THAT(Topics(store, "nothing/#"), IsEmpty());
}

TEST(RetainedStoreTest, DollarTopicsAreNotMatchedByLeadingWildcards) {
  // MQTT 5.0 §4.7.2.
  RetainedStore store;
  for (const char* t : {"$SYS", "$SYS/broker/uptime", "$x", "a/$x", "a"})
    store.Set(Retained(t));
  EXPECT_THAT(Topics(store, "#"), ElementsAre("a", "a/$x"));
  EXPECT_THAT(Topics(store, "+"), ElementsAre("a"));
  EXPECT_THAT(Topics(store, "+/#"), ElementsAre("a", "a/$x"));
  EXPECT_THAT(Topics(store, "+/broker/uptime"), IsEmpty());
  EXPECT_THAT(Topics(store, "$SYS/#"), ElementsAre("$SYS", "$SYS/broker/uptime"));
  EXPECT_THAT(Topics(store, "$SYS/+/uptime"), ElementsAre("$SYS/broker/uptime"));
  EXPECT_THAT(Topics(store, "a/+"), ElementsAre("a/$x"));  // only the first level is special
}

TEST(RetainedStoreTest, ExpiredMessagesAreSkipped) {
  RetainedStore store;
  store.Set(Retained("a/expiring", "x", kNow + std::chrono::seconds(10)));
  store.Set(Retained("a/lasting"));
  EXPECT_THAT(Topics(store, "a/#", kNow), ElementsAre("a/expiring", "a/lasting"));
  EXPECT_THAT(Topics(store, "a/+", kNow + std::chrono::seconds(10)), ElementsAre("a/lasting"));
  EXPECT_THAT(Topics(store, "a/#", kNow + std::chrono::seconds(10)), ElementsAre("a/lasting"));
  EXPECT_THAT(Topics(store, "a/expiring", kNow + std::chrono::seconds(11)), IsEmpty());
  // Through a '#' at the parent level too.
  store.Set(Retained("b", "x", kNow));
  EXPECT_THAT(Topics(store, "b/#", kNow - std::chrono::seconds(1)), ElementsAre("b"));
  EXPECT_THAT(Topics(store, "b/#", kNow), IsEmpty());
}

TEST(RetainedStoreTest, AMatchRemovesTheExpiredMessagesItComesAcross) {
  RetainedStore store;
  for (std::string topic : {"s/1/temp", "s/1/hum", "s/2/temp", "s/3", "t/x"})
    store.Set(Retained(topic, "x", kNow + std::chrono::seconds(10)));
  store.Set(Retained("s/2/hum"));
  EXPECT_EQ(store.size(), 6u);
  const Clock::time_point later = kNow + std::chrono::seconds(10);
  // Each kind of level: literal, '+' and '#'; what the filters do not reach stays.
  EXPECT_THAT(Topics(store, "s/1/temp", later), IsEmpty());
  EXPECT_EQ(store.size(), 5u);
  EXPECT_THAT(Topics(store, "s/+/hum", later), ElementsAre("s/2/hum"));
  EXPECT_EQ(store.size(), 4u);
  EXPECT_THAT(Topics(store, "s/#", later), ElementsAre("s/2/hum"));
  EXPECT_EQ(store.size(), 2u);  // s/2/hum and t/x
  // The emptied levels went with them: storing and matching work as on a new tree.
  EXPECT_THAT(Topics(store, "+/+/+", kNow), ElementsAre("s/2/hum"));
  store.Set(Retained("s/1/temp"));
  EXPECT_THAT(Topics(store, "s/#", later), ElementsAre("s/1/temp", "s/2/hum"));
  EXPECT_THAT(Topics(store, "#", later), ElementsAre("s/1/temp", "s/2/hum"));
  EXPECT_EQ(store.size(), 2u);  // t/x went at the '#'
}

TEST(RetainedStoreTest, RemoveExpiredFindsThemWhereNoFilterWent) {
  RetainedStore store;
  auto at = [](int s) { return kNow + std::chrono::seconds(s); };
  store.Set(Retained("d/1/status", "x", at(10)));
  store.Set(Retained("d/2/status", "x", at(20)));
  store.Set(Retained("d/2/status/detail", "x", at(10)));
  store.Set(Retained("d/3/status", "x", at(10)));
  store.Set(Retained("d/3/status", "y", at(30)));  // replaced: its first expiry no longer counts
  store.Set(Retained("d/4/status", "x", at(10)));
  store.Set(Retained("d/4/status", ""));  // deleted
  store.Set(Retained("d/5/status"));      // no expiry
  auto removed_by = [&](Clock::time_point now) {
    std::vector<std::string> topics;
    store.RemoveExpired(now, [&](const MessagePtr& m) { topics.push_back(m->topic); });
    std::sort(topics.begin(), topics.end());
    return topics;
  };
  EXPECT_THAT(removed_by(at(9)), IsEmpty());
  EXPECT_THAT(removed_by(at(10)), ElementsAre("d/1/status", "d/2/status/detail"));
  EXPECT_EQ(store.size(), 3u);
  // One that a match removed first is not reported again.
  EXPECT_THAT(Topics(store, "d/2/#", at(20)), IsEmpty());
  EXPECT_THAT(removed_by(at(25)), IsEmpty());
  EXPECT_THAT(removed_by(at(30)), ElementsAre("d/3/status"));
  EXPECT_EQ(store.size(), 1u);
  EXPECT_THAT(Topics(store, "#", at(30)), ElementsAre("d/5/status"));
  store.Set(Retained("d/1/status", "z", at(40)));
  EXPECT_THAT(removed_by(at(40)), ElementsAre("d/1/status"));
  EXPECT_EQ(store.size(), 1u);
}

TEST(RetainedStoreTest, DeletingEverythingPrunes) {
  RetainedStore store;
  std::vector<std::string> topics;
  for (int i = 0; i < 50; ++i) {
    for (int j = 0; j < 20; ++j) {
      topics.push_back(absl::StrCat("t", i, "/", j, "/leaf"));
      topics.push_back(absl::StrCat("t", i, "/", j));
    }
    topics.push_back(absl::StrCat("t", i));
  }
  for (const std::string& t : topics)
    store.Set(Retained(t));
  EXPECT_EQ(store.size(), topics.size());
  for (const std::string& t : topics)
    store.Set(Retained(t, ""));
  EXPECT_EQ(store.size(), 0u);
  EXPECT_THAT(Topics(store, "#"), IsEmpty());
  // Everything can be stored again on the pruned tree.
  for (const std::string& t : topics)
    store.Set(Retained(t));
  EXPECT_EQ(store.size(), topics.size());
  EXPECT_EQ(Topics(store, "#").size(), topics.size());
  EXPECT_THAT(Topics(store, "t7/3/+"), ElementsAre("t7/3/leaf"));
}

TEST(RetainedStoreTest, MatchAgreesWithTopicMatches) {
  std::vector<std::string> topics;
  for (const char* a : {"a", "b", "", "$x"}) {
    topics.push_back(a);
    for (const char* b : {"a", "b", ""}) {
      topics.push_back(std::string(a) + "/" + b);
      for (const char* c : {"a", ""})
        topics.push_back(std::string(a) + "/" + b + "/" + c);
    }
  }
  RetainedStore store;
  for (const std::string& t : topics) {
    if (mqtt::IsValidTopicName(t)) store.Set(Retained(t));
  }
  for (const char* filter : {"#", "+", "+/+", "+/#", "a/#", "/#", "+/+/+", "a/+/#", "$x/#", "$x/+",
                             "+/a/+", "//", "/+/", "b/+/a", "a/b/a/#", "+//#"}) {
    std::vector<std::string> expected;
    for (const std::string& t : topics) {
      if (mqtt::IsValidTopicName(t) && mqtt::TopicMatches(filter, t)) expected.push_back(t);
    }
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(Topics(store, filter), expected) << filter;
  }
}

}  // namespace
}  // namespace backend
