// Tests of backend/subscription_trie.cc: the matching rules of MQTT 5.0 §4.7 as the trie applies
// them, replacing and removing subscriptions, shared groups (§4.8.2), and a property test that
// checks Match against mqtt::TopicMatches on random filters and topics.
#include "backend/subscription_trie.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mqtt/topic.h"

namespace backend {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

Subscriber Sub(uint64_t session, uint32_t subscription_id = 0, mqtt::QoS qos = mqtt::QoS::k0) {
  Subscriber s;
  s.session_id = session;
  s.options.qos = qos;
  s.subscription_id = subscription_id;
  return s;
}

// The sessions visited for `topic`, sorted; a session visited twice appears twice.
std::vector<uint64_t> Sessions(SubscriptionTrie& trie, std::string_view topic) {
  std::vector<uint64_t> out;
  trie.Match(topic, [&](const Subscriber& s) { out.push_back(s.session_id); });
  std::sort(out.begin(), out.end());
  return out;
}

// Every visit as it was made, for the tests of shared groups.
std::vector<Subscriber> Visits(SubscriptionTrie& trie, std::string_view topic) {
  std::vector<Subscriber> out;
  trie.Match(topic, [&](const Subscriber& s) { out.push_back(s); });
  return out;
}

TEST(SubscriptionTrieTest, ExactMatch) {
  SubscriptionTrie trie;
  EXPECT_TRUE(trie.Add("sport/tennis", "", Sub(1)));
  EXPECT_THAT(Sessions(trie, "sport/tennis"), ElementsAre(1));
  for (std::string_view other : {"sport", "sport/tennis/x", "sport/golf", "Sport/tennis",
                                 "sport/tennis/", "/sport/tennis", "tennis"}) {
    EXPECT_THAT(Sessions(trie, other), IsEmpty()) << other;
  }
}

TEST(SubscriptionTrieTest, EmptyLevelsAreLevels) {
  SubscriptionTrie trie;
  trie.Add("a//b", "", Sub(1));
  trie.Add("/", "", Sub(2));
  trie.Add("a/", "", Sub(3));
  EXPECT_THAT(Sessions(trie, "a//b"), ElementsAre(1));
  EXPECT_THAT(Sessions(trie, "a/b"), IsEmpty());
  EXPECT_THAT(Sessions(trie, "/"), ElementsAre(2));
  EXPECT_THAT(Sessions(trie, "a/"), ElementsAre(3));
  EXPECT_THAT(Sessions(trie, "a"), IsEmpty());
}

TEST(SubscriptionTrieTest, PlusMatchesExactlyOneLevelIncludingAnEmptyOne) {
  SubscriptionTrie trie;
  trie.Add("sport/+/player1", "", Sub(1));
  trie.Add("+", "", Sub(2));
  trie.Add("+/+", "", Sub(3));
  trie.Add("a/+", "", Sub(4));
  EXPECT_THAT(Sessions(trie, "sport/tennis/player1"), ElementsAre(1));
  EXPECT_THAT(Sessions(trie, "sport//player1"), ElementsAre(1));
  EXPECT_THAT(Sessions(trie, "sport/player1"), ElementsAre(3));  // only "+/+"
  EXPECT_THAT(Sessions(trie, "sport/a/b/player1"), IsEmpty());
  EXPECT_THAT(Sessions(trie, "a"), ElementsAre(2));
  EXPECT_THAT(Sessions(trie, "/"), ElementsAre(3));  // two empty levels
  EXPECT_THAT(Sessions(trie, "a/"), ElementsAre(3, 4));
  EXPECT_THAT(Sessions(trie, "a/b"), ElementsAre(3, 4));
  EXPECT_THAT(Sessions(trie, "a/b/c"), IsEmpty());
}

TEST(SubscriptionTrieTest, HashMatchesTheParentLevelAndEverythingBelow) {
  SubscriptionTrie trie;
  trie.Add("sport/#", "", Sub(1));
  trie.Add("#", "", Sub(2));
  trie.Add("a/+/#", "", Sub(3));
  trie.Add("/#", "", Sub(4));
  EXPECT_THAT(Sessions(trie, "sport"), ElementsAre(1, 2));  // "sport/#" matches "sport"
  EXPECT_THAT(Sessions(trie, "sport/tennis"), ElementsAre(1, 2));
  EXPECT_THAT(Sessions(trie, "sport/tennis/player1"), ElementsAre(1, 2));
  EXPECT_THAT(Sessions(trie, "sport/"), ElementsAre(1, 2));
  EXPECT_THAT(Sessions(trie, "sports"), ElementsAre(2));
  EXPECT_THAT(Sessions(trie, "a"), ElementsAre(2));  // '+' needs a level before the '#'
  EXPECT_THAT(Sessions(trie, "a/b"), ElementsAre(2, 3));
  EXPECT_THAT(Sessions(trie, "a/b/c/d"), ElementsAre(2, 3));
  EXPECT_THAT(Sessions(trie, "/"), ElementsAre(2, 4));
  EXPECT_THAT(Sessions(trie, "/x"), ElementsAre(2, 4));
}

TEST(SubscriptionTrieTest, DollarTopicsAreNotMatchedByFirstLevelWildcards) {
  // MQTT 5.0 §4.7.2.
  SubscriptionTrie trie;
  trie.Add("#", "", Sub(1));
  trie.Add("+/monitor", "", Sub(2));
  trie.Add("+", "", Sub(3));
  trie.Add("+/#", "", Sub(4));
  trie.Add("$SYS/#", "", Sub(5));
  trie.Add("$SYS/+", "", Sub(6));
  trie.Add("a/+", "", Sub(7));
  trie.Add("a/#", "", Sub(8));
  trie.Add("#", "g", Sub(9));
  EXPECT_THAT(Sessions(trie, "$SYS/monitor"), ElementsAre(5, 6));
  EXPECT_THAT(Sessions(trie, "$SYS"), ElementsAre(5));
  EXPECT_THAT(Sessions(trie, "$x"), IsEmpty());
  // '$' only matters at the first level.
  EXPECT_THAT(Sessions(trie, "a/$x"), ElementsAre(1, 4, 7, 8, 9));
  // A first level that merely contains '$' is an ordinary one.
  EXPECT_THAT(Sessions(trie, "x$/monitor"), ElementsAre(1, 2, 4, 9));
}

TEST(SubscriptionTrieTest, AddingAgainReplacesTheOptions) {
  SubscriptionTrie trie;
  EXPECT_TRUE(trie.Add("a/+", "", Sub(1, 7, mqtt::QoS::k0)));
  EXPECT_FALSE(trie.Add("a/+", "", Sub(1, 8, mqtt::QoS::k2)));
  EXPECT_EQ(trie.size(), 1u);
  std::vector<Subscriber> visits = Visits(trie, "a/b");
  ASSERT_EQ(visits.size(), 1u);
  EXPECT_EQ(visits[0].options.qos, mqtt::QoS::k2);
  EXPECT_EQ(visits[0].subscription_id, 8u);
  EXPECT_FALSE(visits[0].shared);

  // The same filter in a group is another subscription, replaced the same way.
  EXPECT_TRUE(trie.Add("a/+", "g", Sub(1, 9, mqtt::QoS::k1)));
  EXPECT_FALSE(trie.Add("a/+", "g", Sub(1, 10, mqtt::QoS::k2)));
  EXPECT_EQ(trie.size(), 2u);
  visits = Visits(trie, "a/b");
  ASSERT_EQ(visits.size(), 2u);
  const Subscriber& shared = visits[0].shared ? visits[0] : visits[1];
  EXPECT_TRUE(shared.shared);
  EXPECT_EQ(shared.subscription_id, 10u);
  EXPECT_EQ(shared.options.qos, mqtt::QoS::k2);
}

TEST(SubscriptionTrieTest, RemoveSaysWhetherTheSubscriptionExisted) {
  SubscriptionTrie trie;
  trie.Add("a/b", "", Sub(1));
  trie.Add("a/+", "g", Sub(2));
  EXPECT_FALSE(trie.Remove("a/b", "", 2));   // another session
  EXPECT_FALSE(trie.Remove("a/b", "g", 1));  // not in a group
  EXPECT_FALSE(trie.Remove("a", "", 1));     // a prefix of the filter
  EXPECT_FALSE(trie.Remove("a/b/c", "", 1));
  EXPECT_FALSE(trie.Remove("a/#", "", 1));
  EXPECT_FALSE(trie.Remove("a/+", "", 2));   // in a group, not alone
  EXPECT_FALSE(trie.Remove("a/+", "h", 2));  // another group
  EXPECT_EQ(trie.size(), 2u);
  EXPECT_TRUE(trie.Remove("a/b", "", 1));
  EXPECT_FALSE(trie.Remove("a/b", "", 1));
  EXPECT_TRUE(trie.Remove("a/+", "g", 2));
  EXPECT_FALSE(trie.Remove("a/+", "g", 2));
  EXPECT_EQ(trie.size(), 0u);
  EXPECT_THAT(Sessions(trie, "a/b"), IsEmpty());
}

TEST(SubscriptionTrieTest, RemovingPrunesAndLeavesOtherFiltersAlone) {
  SubscriptionTrie trie;
  const std::vector<std::string> filters = {"a", "a/b", "a/b/c", "a/+/c", "a/#",   "+/b",
                                            "#", "+",   "/",     "a//c",  "$SYS/#"};
  for (size_t i = 0; i < filters.size(); ++i) {
    ASSERT_TRUE(trie.Add(filters[i], "", Sub(1, static_cast<uint32_t>(i))));
  }
  EXPECT_EQ(trie.size(), filters.size());
  // Remove from the deepest filters up and check at each step that the rest still match.
  for (size_t removed = 0; removed < filters.size(); ++removed) {
    const std::string& victim = filters[filters.size() - 1 - removed];
    ASSERT_TRUE(trie.Remove(victim, "", 1)) << victim;
    EXPECT_EQ(trie.size(), filters.size() - 1 - removed);
    for (std::string_view topic : {"a", "a/b", "a/b/c", "a/x/c", "x/b", "/", "a//c", "$SYS/x"}) {
      size_t expected = 0;
      for (size_t i = 0; i + 1 + removed < filters.size(); ++i) {
        expected += mqtt::TopicMatches(filters[i], topic) ? 1 : 0;
      }
      EXPECT_EQ(Sessions(trie, topic).size(), expected)
          << "after removing " << victim << ": " << topic;
    }
  }
  EXPECT_EQ(trie.size(), 0u);
  // The pruned paths are built again.
  for (size_t i = 0; i < filters.size(); ++i) {
    EXPECT_TRUE(trie.Add(filters[i], "", Sub(2)));
  }
  EXPECT_EQ(trie.size(), filters.size());
  EXPECT_THAT(Sessions(trie, "a/b/c"), ElementsAre(2, 2, 2, 2));  // a/b/c a/+/c a/# #
}

TEST(SubscriptionTrieTest, SharedGroupDeliversToOneMemberPerGroup) {
  SubscriptionTrie trie;
  for (uint64_t id : {1, 2, 3})
    trie.Add("a/+", "g", Sub(id));
  for (uint64_t id : {4, 5})
    trie.Add("a/+", "h", Sub(id));
  trie.Add("a/+", "", Sub(6));
  trie.Add("a/#", "g", Sub(7));  // the same group name at another filter is another group
  EXPECT_EQ(trie.size(), 7u);
  for (int publish = 0; publish < 12; ++publish) {
    int from_g = 0, from_h = 0, from_g_hash = 0, plain = 0;
    for (const Subscriber& s : Visits(trie, "a/b")) {
      if (!s.shared) {
        EXPECT_EQ(s.session_id, 6u);
        ++plain;
      } else if (s.session_id <= 3) {
        ++from_g;
      } else if (s.session_id <= 5) {
        ++from_h;
      } else {
        EXPECT_EQ(s.session_id, 7u);
        ++from_g_hash;
      }
    }
    EXPECT_EQ(plain, 1);
    EXPECT_EQ(from_g, 1);
    EXPECT_EQ(from_h, 1);
    EXPECT_EQ(from_g_hash, 1);
  }
  // A topic that matches none of the groups' filters takes no turn.
  EXPECT_THAT(Sessions(trie, "b"), IsEmpty());
}

TEST(SubscriptionTrieTest, SharedGroupTakesMembersInTurnBySessionId) {
  SubscriptionTrie trie;
  for (uint64_t id : {30, 10, 20})
    trie.Add("t", "g", Sub(id));
  std::vector<uint64_t> chosen;
  for (int publish = 0; publish < 7; ++publish) {
    std::vector<Subscriber> visits = Visits(trie, "t");
    ASSERT_EQ(visits.size(), 1u);
    EXPECT_TRUE(visits[0].shared);
    chosen.push_back(visits[0].session_id);
  }
  EXPECT_THAT(chosen, ElementsAre(10, 20, 30, 10, 20, 30, 10));
}

TEST(SubscriptionTrieTest, SharedGroupTurnsSkipNoRemainingMember) {
  SubscriptionTrie trie;
  for (uint64_t id : {1, 2, 3, 4})
    trie.Add("t", "g", Sub(id));
  ASSERT_TRUE(trie.Remove("t", "g", 2));
  // Whatever the cursor did before, the remaining members share the next publishes evenly.
  std::vector<uint64_t> chosen;
  for (int publish = 0; publish < 9; ++publish)
    chosen.push_back(Visits(trie, "t")[0].session_id);
  for (uint64_t id : {1, 3, 4}) {
    EXPECT_EQ(std::count(chosen.begin(), chosen.end(), id), 3) << id;
  }
}

TEST(SubscriptionTrieTest, SessionInSeveralGroups) {
  SubscriptionTrie trie;
  trie.Add("a/+", "g", Sub(1));
  trie.Add("a/+", "g", Sub(2));
  trie.Add("a/+", "h", Sub(1));
  trie.Add("a/#", "g", Sub(1));
  // Each group picks on its own: session 1 is the only member of two of them.
  std::vector<uint64_t> first = Sessions(trie, "a/b");
  std::vector<uint64_t> second = Sessions(trie, "a/b");
  EXPECT_THAT(first, ElementsAre(1, 1, 1));   // g picks 1, h has 1, g at a/# has 1
  EXPECT_THAT(second, ElementsAre(1, 1, 2));  // g picks 2
  // Leaving one group keeps the others.
  ASSERT_TRUE(trie.Remove("a/+", "h", 1));
  EXPECT_EQ(Sessions(trie, "a/b").size(), 2u);
}

TEST(SubscriptionTrieTest, RemovingTheLastMemberDropsTheGroup) {
  SubscriptionTrie trie;
  trie.Add("a/b", "g", Sub(1));
  trie.Add("a/b", "g", Sub(2));
  trie.Add("a/b", "", Sub(3));
  ASSERT_TRUE(trie.Remove("a/b", "g", 1));
  EXPECT_THAT(Sessions(trie, "a/b"), ElementsAre(2, 3));
  ASSERT_TRUE(trie.Remove("a/b", "g", 2));
  std::vector<Subscriber> visits = Visits(trie, "a/b");
  ASSERT_EQ(visits.size(), 1u);  // no empty group is left to pick from
  EXPECT_FALSE(visits[0].shared);
  EXPECT_FALSE(trie.Remove("a/b", "g", 2));
  ASSERT_TRUE(trie.Remove("a/b", "", 3));
  EXPECT_EQ(trie.size(), 0u);
  // A new group of the same name starts afresh.
  EXPECT_TRUE(trie.Add("a/b", "g", Sub(4)));
  visits = Visits(trie, "a/b");
  ASSERT_EQ(visits.size(), 1u);
  EXPECT_EQ(visits[0].session_id, 4u);
  EXPECT_TRUE(visits[0].shared);
}

// All filters of a four-level topic's shape: each level literal, '+' or another literal, with or
// without a trailing '#' at every depth. They overlap heavily; exactly the matching ones must be
// visited, each once.
TEST(SubscriptionTrieTest, ManyOverlappingFilters) {
  const std::vector<std::string> topic_levels = {"a", "b", "c", "d"};
  std::vector<std::string> filters = {"#"};
  std::vector<std::string> prefixes = {""};
  for (const std::string& level : topic_levels) {
    std::vector<std::string> next;
    for (const std::string& p : prefixes) {
      for (const std::string& choice : {level, std::string("+"), std::string("x")}) {
        std::string f = p.empty() ? choice : p + "/" + choice;
        next.push_back(f);
        filters.push_back(f);
        filters.push_back(f + "/#");
      }
    }
    prefixes = std::move(next);
  }
  SubscriptionTrie trie;
  for (size_t i = 0; i < filters.size(); ++i) {
    ASSERT_TRUE(trie.Add(filters[i], "", Sub(i + 1)));
  }
  ASSERT_EQ(trie.size(), filters.size());
  for (std::string_view topic : {"a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "x/x", "a/x/c/x"}) {
    std::vector<uint64_t> expected;
    for (size_t i = 0; i < filters.size(); ++i) {
      if (mqtt::TopicMatches(filters[i], topic)) expected.push_back(i + 1);
    }
    EXPECT_FALSE(expected.empty());
    EXPECT_EQ(Sessions(trie, topic), expected) << topic;
  }
}

TEST(SubscriptionTrieTest, UnrelatedSubscriptionsAreNotVisited) {
  SubscriptionTrie trie;
  // 100,000 subscriptions that share levels, wildcards and depth with the topic but match none
  // of it.
  for (uint64_t i = 0; i < 100'000; ++i) {
    std::string n = absl::StrCat("u", i);
    uint64_t session = 1000 + i;
    switch (i % 5) {
      case 0:
        trie.Add("sensors/" + n + "/temp", "", Sub(session));
        break;
      case 1:
        trie.Add("sensors/+/" + n, "", Sub(session));
        break;
      case 2:
        trie.Add(n + "/#", "", Sub(session));
        break;
      case 3:
        trie.Add("+/" + n + "/temp", "", Sub(session));
        break;
      case 4:
        trie.Add("sensors/42/temp/" + n, "g", Sub(session));
        break;
    }
  }
  trie.Add("sensors/42/temp", "", Sub(1));
  trie.Add("sensors/+/temp", "", Sub(2));
  trie.Add("sensors/#", "", Sub(3));
  trie.Add("#", "", Sub(4));
  trie.Add("+/42/+", "g", Sub(5));
  EXPECT_EQ(trie.size(), 100'005u);
  EXPECT_THAT(Sessions(trie, "sensors/42/temp"), ElementsAre(1, 2, 3, 4, 5));
  // Among the unrelated ones, a topic picks out exactly its own.
  EXPECT_THAT(Sessions(trie, "sensors/u0/temp"), ElementsAre(2, 3, 4, 1000));
  EXPECT_THAT(Sessions(trie, "x/u3/temp"), ElementsAre(4, 1003));
  EXPECT_THAT(Sessions(trie, "u2/a/b"), ElementsAre(4, 1002));
}

// ---------------------------------------------------------------------------------------------
// Property test: random subscriptions over a small alphabet of levels, so that filters collide and
// overlap, checked against the brute force of mqtt::TopicMatches over every (session, filter).

std::string RandomFilter(std::mt19937& rng) {
  static const char* const kLevels[] = {"a", "b", "", "+", "$x"};
  int n = std::uniform_int_distribution<int>(1, 4)(rng);
  std::string f;
  for (int i = 0; i < n; ++i) {
    if (i > 0) f += '/';
    if (i == n - 1 && std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
      f += '#';
    } else {
      f += kLevels[std::uniform_int_distribution<int>(0, 4)(rng)];
    }
  }
  return f.empty() ? RandomFilter(rng) : f;
}

std::string RandomTopic(std::mt19937& rng) {
  static const char* const kLevels[] = {"a", "b", "c", "", "$x"};
  int n = std::uniform_int_distribution<int>(1, 5)(rng);
  std::string t;
  for (int i = 0; i < n; ++i) {
    if (i > 0) t += '/';
    t += kLevels[std::uniform_int_distribution<int>(0, 4)(rng)];
  }
  return t.empty() ? RandomTopic(rng) : t;
}

TEST(SubscriptionTriePropertyTest, MatchAgreesWithTopicMatches) {
  std::mt19937 rng(7340033);
  for (int round = 0; round < 50; ++round) {
    SubscriptionTrie trie;
    std::vector<std::string> filters;  // subscription_id - 1 indexes this
    std::set<std::pair<uint64_t, uint32_t>> live;
    auto filter_index = [&](const std::string& f) {
      auto it = std::find(filters.begin(), filters.end(), f);
      if (it != filters.end()) return static_cast<uint32_t>(it - filters.begin() + 1);
      filters.push_back(f);
      return static_cast<uint32_t>(filters.size());
    };
    for (int op = 0; op < 200; ++op) {
      uint64_t session = std::uniform_int_distribution<uint64_t>(1, 8)(rng);
      std::string f = RandomFilter(rng);
      ASSERT_TRUE(mqtt::IsValidTopicFilter(f)) << f;
      uint32_t id = filter_index(f);
      if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
        EXPECT_EQ(trie.Remove(f, "", session), live.erase({session, id}) > 0) << f;
      } else {
        EXPECT_EQ(trie.Add(f, "", Sub(session, id)), live.insert({session, id}).second) << f;
      }
      ASSERT_EQ(trie.size(), live.size());
    }
    for (int t = 0; t < 100; ++t) {
      std::string topic = RandomTopic(rng);
      std::vector<std::pair<uint64_t, uint32_t>> visited;
      trie.Match(topic, [&](const Subscriber& s) {
        visited.emplace_back(s.session_id, s.subscription_id);
      });
      std::vector<std::pair<uint64_t, uint32_t>> expected;
      for (const auto& [session, id] : live) {
        if (mqtt::TopicMatches(filters[id - 1], topic)) expected.emplace_back(session, id);
      }
      // Each matching subscription exactly once: compare as multisets.
      ASSERT_THAT(visited, UnorderedElementsAreArray(expected)) << "topic " << topic;
    }
  }
}

}  // namespace
}  // namespace backend
