// Tests of backend/access_rules.cc: first match wins, access is allowed when no rule applies,
// rules for publishing, subscribing or both, and the subscription examples of access_rules.h.
#include "backend/access_rules.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace backend {
namespace {

AccessRule Rule(bool allow, std::string filter, bool publish = true, bool subscribe = true) {
  return AccessRule{
      .allow = allow, .publish = publish, .subscribe = subscribe, .filter = std::move(filter)};
}
AccessRule Allow(std::string filter) {
  return Rule(true, std::move(filter));
}
AccessRule Deny(std::string filter) {
  return Rule(false, std::move(filter));
}

TEST(AccessRulesTest, NoRulesAllowEverything) {
  AccessRules rules;
  EXPECT_TRUE(rules.empty());
  EXPECT_TRUE(rules.MayPublish("a/b"));
  EXPECT_TRUE(rules.MayPublish("$SYS/x"));
  EXPECT_TRUE(rules.MaySubscribe("#"));
  EXPECT_TRUE(rules.MaySubscribe("$SYS/#"));
}

TEST(AccessRulesTest, NoApplicableRuleAllows) {
  AccessRules rules({Deny("private/#")});
  EXPECT_FALSE(rules.empty());
  EXPECT_TRUE(rules.MayPublish("public/a"));
  EXPECT_TRUE(rules.MaySubscribe("public/+"));
  EXPECT_FALSE(rules.MayPublish("private/a"));
  EXPECT_FALSE(rules.MayPublish("private"));  // '#' includes the parent level
}

TEST(AccessRulesTest, FirstMatchWins) {
  AccessRules deny_first({Deny("a/#"), Allow("a/b")});
  EXPECT_FALSE(deny_first.MayPublish("a/b"));
  EXPECT_FALSE(deny_first.MaySubscribe("a/b"));

  AccessRules allow_first({Allow("a/b"), Deny("a/#")});
  EXPECT_TRUE(allow_first.MayPublish("a/b"));
  EXPECT_TRUE(allow_first.MaySubscribe("a/b"));
  EXPECT_FALSE(allow_first.MayPublish("a/c"));
  EXPECT_FALSE(allow_first.MaySubscribe("a/c"));
}

TEST(AccessRulesTest, AllowBeforeDenyCarvesAnException) {
  AccessRules rules({Allow("secret/public/#"), Deny("secret/#")});
  EXPECT_TRUE(rules.MayPublish("secret/public/news"));
  EXPECT_TRUE(rules.MayPublish("secret/public"));
  EXPECT_FALSE(rules.MayPublish("secret/plans"));
  EXPECT_TRUE(rules.MaySubscribe("secret/public/#"));
  EXPECT_TRUE(rules.MaySubscribe("secret/public/+"));
  EXPECT_FALSE(rules.MaySubscribe("secret/plans"));
  // Covered by the deny rule but only overlapping the allow rule: the allow rule does not decide.
  EXPECT_FALSE(rules.MaySubscribe("secret/+"));
  EXPECT_FALSE(rules.MaySubscribe("secret/#"));
  EXPECT_FALSE(rules.MaySubscribe("#"));
  EXPECT_TRUE(rules.MaySubscribe("other/#"));
}

TEST(AccessRulesTest, AllowRuleThatOnlyOverlapsDoesNotDecide) {
  // "a/+" receives a/b, which the rule allows, and a/c, which no rule mentions: the default
  // decides, and it allows.
  AccessRules rules({Allow("a/b"), Deny("b/#")});
  EXPECT_TRUE(rules.MaySubscribe("a/+"));
  EXPECT_FALSE(rules.MaySubscribe("#"));  // overlaps the deny rule on b/...
  EXPECT_TRUE(rules.MaySubscribe("a/#"));
}

TEST(AccessRulesTest, PublishSubscribeOrAll) {
  AccessRules rules({
      Rule(false, "no-publish/#", /*publish=*/true, /*subscribe=*/false),
      Rule(false, "no-subscribe/#", /*publish=*/false, /*subscribe=*/true),
      Rule(false, "nothing/#", /*publish=*/true, /*subscribe=*/true),
  });
  EXPECT_FALSE(rules.MayPublish("no-publish/a"));
  EXPECT_TRUE(rules.MaySubscribe("no-publish/a"));
  EXPECT_TRUE(rules.MaySubscribe("no-publish/#"));
  EXPECT_TRUE(rules.MayPublish("no-subscribe/a"));
  EXPECT_FALSE(rules.MaySubscribe("no-subscribe/a"));
  EXPECT_FALSE(rules.MayPublish("nothing/a"));
  EXPECT_FALSE(rules.MaySubscribe("nothing/a"));
}

TEST(AccessRulesTest, RuleForTheOtherActionDoesNotShadowLaterRules) {
  // An allow rule for publishing alone must not let a subscription through a later deny.
  AccessRules rules({Rule(true, "a/#", /*publish=*/true, /*subscribe=*/false), Deny("a/#")});
  EXPECT_TRUE(rules.MayPublish("a/b"));
  EXPECT_FALSE(rules.MaySubscribe("a/b"));
}

TEST(AccessRulesTest, ExamplesOfTheHeader) {
  AccessRules rules({Rule(false, "secret/#", /*publish=*/false, /*subscribe=*/true)});
  EXPECT_FALSE(rules.MaySubscribe("secret/a"));  // covered
  EXPECT_FALSE(rules.MaySubscribe("#"));         // overlaps on secret/...
  EXPECT_TRUE(rules.MaySubscribe("public/#"));   // no overlap
  EXPECT_TRUE(rules.MaySubscribe("$SYS/#"));     // "secret/#" never matches '$' topics
  // More of the same reasoning.
  EXPECT_FALSE(rules.MaySubscribe("secret"));
  EXPECT_FALSE(rules.MaySubscribe("+/a"));  // overlaps on secret/a
  EXPECT_FALSE(rules.MaySubscribe("+"));    // overlaps on secret itself
  EXPECT_FALSE(rules.MaySubscribe("+/a/b/c/d"));
  EXPECT_TRUE(rules.MaySubscribe("secrets/#"));
  EXPECT_TRUE(rules.MayPublish("secret/a"));  // the rule is for subscribing only
}

TEST(AccessRulesTest, DenyingDollarTopics) {
  AccessRules rules({Rule(false, "$SYS/#", /*publish=*/true, /*subscribe=*/false)});
  EXPECT_FALSE(rules.MayPublish("$SYS/broker/uptime"));
  EXPECT_FALSE(rules.MayPublish("$SYS"));
  EXPECT_TRUE(rules.MayPublish("SYS/x"));
  AccessRules deny_all({Deny("#")});
  EXPECT_FALSE(deny_all.MayPublish("a"));
  EXPECT_FALSE(deny_all.MaySubscribe("a/+"));
  // "#" does not match '$' topics (MQTT 5.0 §4.7.2), so it does not deny them either.
  EXPECT_TRUE(deny_all.MayPublish("$SYS/x"));
  EXPECT_TRUE(deny_all.MaySubscribe("$SYS/#"));
}

}  // namespace
}  // namespace backend
