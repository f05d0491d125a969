// Tests of mqtt/topic.cc: validation, the matching examples of MQTT 5.0 §4.7, the relations
// between two filters, shared subscriptions, and a property test that checks FilterCovers and
// FiltersOverlap against TopicMatches on random filters and topics.
#include "mqtt/topic.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace mqtt {
namespace {

TEST(TopicNameTest, Validity) {
  for (std::string_view valid :
       {"a", "a/b", "/", "//", "/a", "a/", "$SYS/x", " ", "sport/tennis"}) {
    EXPECT_TRUE(IsValidTopicName(valid)) << valid;
  }
  for (std::string_view invalid : {"", "#", "+", "a/#", "a/+/b", "sport+", "a#"}) {
    EXPECT_FALSE(IsValidTopicName(invalid)) << invalid;
  }
}

TEST(TopicNameTest, LengthLimitIsThatOfAnMqttString) {
  EXPECT_TRUE(IsValidTopicName(std::string(65535, 'a')));
  EXPECT_FALSE(IsValidTopicName(std::string(65536, 'a')));
}

TEST(TopicFilterTest, SpecExamplesOfValidity) {
  // MQTT 5.0 §4.7.1.2 and §4.7.1.3.
  for (std::string_view valid :
       {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#", "sport/+/player1", "/+", "+/+",
        "/", "a//b", "$SYS/#", "$share/g/a"}) {
    EXPECT_TRUE(IsValidTopicFilter(valid)) << valid;
  }
  for (std::string_view invalid : {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "#/a",
                                   "a/#/", "++", "a/+b", "a/b#", "##"}) {
    EXPECT_FALSE(IsValidTopicFilter(invalid)) << invalid;
  }
  EXPECT_FALSE(IsValidTopicFilter(std::string(65536, 'a')));
}

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

TEST(TopicMatchesTest, SpecExamples) {
  const MatchCase cases[] = {
      // §4.7.1.2 multi-level wildcard.
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/#", "sport", true},
      {"sport/#", "sports", false},
      {"#", "sport/tennis", true},
      // §4.7.1.3 single-level wildcard.
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"sport/+/player1", "sport//player1", true},
      // §4.7.2 topics beginning with '$'.
      {"#", "$SYS/monitor/Clients", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"#", "$SYS", false},
      {"+", "$SYS", false},
      // '$' below the first level is an ordinary character.
      {"a/#", "a/$b", true},
      {"a/+", "a/$b", true},
      {"+/$b", "a/$b", true},
  };
  for (const MatchCase& c : cases) {
    EXPECT_EQ(TopicMatches(c.filter, c.topic), c.matches) << c.filter << " vs " << c.topic;
  }
}

TEST(TopicMatchesTest, LiteralsAndEmptyLevels) {
  const MatchCase cases[] = {
      {"a/b", "a/b", true},   {"a/b", "a/b/", false},  {"a/b", "a", false},
      {"a/b/", "a/b/", true}, {"+/+", "/", true},      {"/", "/", true},
      {"+", "a", true},       {"a/+/c", "a//c", true}, {"a/+/c", "a/b/d", false},
      {"#", "/", true},       {"a/#", "a/", true},     {"A", "a", false},
      {"+/#", "a", true},     {"+/+/#", "a", false},
  };
  for (const MatchCase& c : cases) {
    EXPECT_EQ(TopicMatches(c.filter, c.topic), c.matches) << c.filter << " vs " << c.topic;
  }
}

struct RelationCase {
  const char* a;
  const char* b;
  bool covers;    // FilterCovers(a, b)
  bool overlaps;  // FiltersOverlap(a, b)
};

const RelationCase kRelationCases[] = {
    {"#", "a/b", true, true},
    {"#", "#", true, true},
    {"#", "+", true, true},
    {"#", "+/#", true, true},
    {"+/#", "#", true, true},  // both match every topic not beginning with '$'
    {"a/#", "a", true, true},  // '#' includes the parent level
    {"a/#", "a/+/b", true, true},
    {"a/+", "a/#", false, true},  // "a/#" matches "a", which "a/+" does not
    {"a/+", "a/b", true, true},
    {"a/b", "a/+", false, true},
    {"a/+", "+/b", false, true},
    {"a/+/#", "a", false, false},
    {"a/+/#", "a/b", true, true},
    {"a/b", "a/c", false, false},
    {"a/b", "a/b/c", false, false},
    {"a/+", "a/+/+", false, false},
    {"+", "a/b", false, false},
    {"+/+", "+", false, false},
    {"a", "a", true, true},
    // §4.7.2: leading wildcards do not reach '$' topics.
    {"#", "$SYS/#", false, false},
    {"#", "$SYS", false, false},
    {"+/#", "$SYS/x", false, false},
    {"+/x", "$SYS/+", false, false},
    {"$SYS/#", "$SYS/+", true, true},
    {"$SYS/#", "#", false, false},
    {"$SYS/+", "$SYS/x", true, true},
    {"$SYS", "+", false, false},
    {"a/#", "a/$x", true, true},
    {"a/+", "a/$x", true, true},
    {"+", "+", true, true},
    {"#", "/", true, true},
    {"/#", "#", false, true},
    {"+", "/#", false, false},  // they share only "", which is no topic name
    {"+", "/+", false, false},
    {"/", "/#", false, true},
};

TEST(FilterRelationTest, Covers) {
  for (const RelationCase& c : kRelationCases) {
    EXPECT_EQ(FilterCovers(c.a, c.b), c.covers) << c.a << " covers " << c.b;
  }
}

TEST(FilterRelationTest, Overlaps) {
  for (const RelationCase& c : kRelationCases) {
    EXPECT_EQ(FiltersOverlap(c.a, c.b), c.overlaps) << c.a << " overlaps " << c.b;
  }
}

TEST(FilterRelationTest, OverlapIsSymmetric) {
  for (const RelationCase& c : kRelationCases) {
    EXPECT_EQ(FiltersOverlap(c.a, c.b), FiltersOverlap(c.b, c.a)) << c.a << " and " << c.b;
  }
}

TEST(SharedFilterTest, Valid) {
  std::optional<SharedFilter> s = ParseSharedFilter("$share/group/sport/+/player1");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->group, "group");
  EXPECT_EQ(s->filter, "sport/+/player1");
  s = ParseSharedFilter("$share/g/#");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->group, "g");
  EXPECT_EQ(s->filter, "#");
  s = ParseSharedFilter("$share/g//");  // the filter "/" is valid
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->filter, "/");
}

TEST(SharedFilterTest, InvalidHasEmptyGroup) {
  for (std::string_view invalid : {
           "$share/",          // nothing
           "$share/group",     // no filter
           "$share//a",        // no group
           "$share/gr+oup/a",  // wildcard in the group
           "$share/#/a",       // wildcard in the group
           "$share/g/",        // empty filter
           "$share/g/a#",      // invalid filter
           "$share/g/#/a",     // invalid filter
       }) {
    std::optional<SharedFilter> s = ParseSharedFilter(invalid);
    ASSERT_TRUE(s.has_value()) << invalid;
    EXPECT_TRUE(s->group.empty()) << invalid;
  }
}

TEST(SharedFilterTest, NotShared) {
  for (std::string_view plain :
       {"a/b", "#", "$SYS/x", "$share", "$sharex/g/a", "share/g/a", "$SHARE/g/a", "a/$share/g/a"}) {
    EXPECT_FALSE(ParseSharedFilter(plain).has_value()) << plain;
  }
}

// ---------------------------------------------------------------------------------------------
// Property test. Filters are drawn from the levels {a, $x, "", +, #}; topics from {a, b, $x, ""},
// where "b" appears in no filter and so stands for "any other level". A topic of at most one level
// more than the longest filter can tell any two filters apart, so enumerating all such topics
// decides the relations exactly; random topics check them the way the contracts are stated.

// A valid filter of one to four levels; never "", which is not a filter.
std::string RandomFilter(std::mt19937& rng) {
  static const char* const kLevels[] = {"a", "$x", "", "+"};
  int n = std::uniform_int_distribution<int>(1, 4)(rng);
  std::string f;
  for (int i = 0; i < n; ++i) {
    if (i > 0) f += '/';
    bool last = i == n - 1;
    if (last && std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
      f += '#';
    } else {
      f += kLevels[std::uniform_int_distribution<int>(0, 3)(rng)];
    }
  }
  return f.empty() ? RandomFilter(rng) : f;
}

const char* const kTopicLevels[] = {"a", "b", "$x", ""};

std::string RandomTopic(std::mt19937& rng) {
  int n = std::uniform_int_distribution<int>(1, 5)(rng);
  std::string t;
  for (int i = 0; i < n; ++i) {
    if (i > 0) t += '/';
    t += kTopicLevels[std::uniform_int_distribution<int>(0, 3)(rng)];
  }
  return t;
}

// Every topic of one to five levels over kTopicLevels, except "" (not a valid name).
std::vector<std::string> AllTopics() {
  std::vector<std::string> all;
  std::vector<std::string> previous = {""};
  for (int depth = 1; depth <= 5; ++depth) {
    std::vector<std::string> next;
    for (const std::string& prefix : previous) {
      for (const char* level : kTopicLevels) {
        next.push_back(depth == 1 ? std::string(level) : prefix + "/" + level);
      }
    }
    for (const std::string& t : next) {
      if (!t.empty()) all.push_back(t);
    }
    previous = std::move(next);
  }
  return all;
}

TEST(FilterRelationPropertyTest, RandomFiltersAgreeWithRandomTopics) {
  std::mt19937 rng(20240611);
  for (int round = 0; round < 3000; ++round) {
    std::string a = RandomFilter(rng);
    std::string b = RandomFilter(rng);
    ASSERT_TRUE(IsValidTopicFilter(a) && IsValidTopicFilter(b)) << a << " " << b;
    bool covers = FilterCovers(a, b);
    bool overlaps = FiltersOverlap(a, b);
    for (int i = 0; i < 200; ++i) {
      std::string t = RandomTopic(rng);
      if (t.empty()) continue;
      bool in_a = TopicMatches(a, t);
      bool in_b = TopicMatches(b, t);
      if (covers && in_b) {
        ASSERT_TRUE(in_a) << a << " is said to cover " << b << " but misses " << t;
      }
      if (in_a && in_b) {
        ASSERT_TRUE(overlaps) << a << " and " << b << " both match " << t;
      }
    }
  }
}

TEST(FilterRelationPropertyTest, RandomFiltersAgreeWithEveryTopicExactly) {
  const std::vector<std::string> topics = AllTopics();
  std::mt19937 rng(7);
  for (int round = 0; round < 1500; ++round) {
    std::string a = RandomFilter(rng);
    std::string b = RandomFilter(rng);
    bool some_in_both = false;
    bool b_within_a = true;
    for (const std::string& t : topics) {
      bool in_a = TopicMatches(a, t);
      bool in_b = TopicMatches(b, t);
      some_in_both |= in_a && in_b;
      b_within_a &= in_a || !in_b;
    }
    ASSERT_EQ(FiltersOverlap(a, b), some_in_both) << a << " and " << b;
    ASSERT_EQ(FilterCovers(a, b), b_within_a) << a << " covers " << b;
  }
}

}  // namespace
}  // namespace mqtt
