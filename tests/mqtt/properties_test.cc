// Tests of Properties::empty() in mqtt/properties.h: true for none set, false for any one set,
// whatever its kind (a number, a string, a list).
#include "mqtt/properties.h"

#include <gtest/gtest.h>

namespace mqtt {
namespace {

TEST(PropertiesTest, EmptyWhenNoneIsSet) {
  EXPECT_TRUE(Properties{}.empty());
  Properties p;
  p.topic_alias = 1;
  p.topic_alias.reset();
  EXPECT_TRUE(p.empty());
}

TEST(PropertiesTest, NotEmptyWithAnyOneSet) {
  Properties number, text, list, user;
  number.message_expiry_interval = 0;
  text.content_type = "";
  list.subscription_identifiers.push_back(1);
  user.user_properties.emplace_back("k", "v");
  for (const Properties* p : {&number, &text, &list, &user})
    EXPECT_FALSE(p->empty());
}

}  // namespace
}  // namespace mqtt
