// Tests of mqtt/utf8.cc against the well-formed sequences of Unicode Table 3-7 and MQTT's ban of
// U+0000 (MQTT 5.0 §1.5.4).
#include "mqtt/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace mqtt {
namespace {

TEST(Utf8Test, AsciiAndEmpty) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("sport/tennis"));
  EXPECT_TRUE(IsValidUtf8("\x01\x1F\x7F"));  // control characters are allowed
}

TEST(Utf8Test, NullCharacterIsRejected) {
  EXPECT_FALSE(IsValidUtf8(std::string("\0", 1)));
  EXPECT_FALSE(IsValidUtf8(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));  // the "modified UTF-8" U+0000 is overlong
}

TEST(Utf8Test, ValidMultiByte) {
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));           // U+0080, smallest two-byte
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9t\xC3\xA9"));  // "été"
  EXPECT_TRUE(IsValidUtf8("\xDF\xBF"));           // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));       // U+0800, smallest three-byte
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));       // U+20AC euro sign
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));       // U+D7FF, just below the surrogates
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));       // U+E000, just above them
  EXPECT_TRUE(IsValidUtf8("\xEF\xBB\xBF"));       // U+FEFF, MQTT says it must not be skipped
  EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));       // U+FFFF, a non-character, allowed
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));   // U+10000, smallest four-byte
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));   // U+1F600
  EXPECT_TRUE(IsValidUtf8("\xF3\xBF\xBF\xBF"));   // U+FFFFF
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF, the largest code point
  EXPECT_TRUE(IsValidUtf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"));
}

TEST(Utf8Test, OverlongFormsAreRejected) {
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // '/' in two bytes
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));          // U+007F in two bytes
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // '/' in three bytes
  EXPECT_FALSE(IsValidUtf8("\xE0\x9F\xBF"));      // U+07FF in three bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));  // '/' in four bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));  // U+FFFF in four bytes
}

TEST(Utf8Test, SurrogatesAreRejected) {
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));              // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xAD\xBF"));              // U+DB7F
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));              // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\xBD\xED\xB8\x80"));  // a CESU-8 surrogate pair
}

TEST(Utf8Test, AboveU10FFFFIsRejected) {
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));      // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));      // lead byte never used
  EXPECT_FALSE(IsValidUtf8("\xF7\xBF\xBF\xBF"));      // U+1FFFFF
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));  // old five-byte form
  EXPECT_FALSE(IsValidUtf8("\xFC\x84\x80\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xFE"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(Utf8Test, TruncatedSequencesAreRejected) {
  EXPECT_FALSE(IsValidUtf8("\xC3"));
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xE2"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F"));
  EXPECT_FALSE(IsValidUtf8("abc\xF0"));
  // A sequence cut short by the next character.
  EXPECT_FALSE(IsValidUtf8("\xC3z"));
  EXPECT_FALSE(IsValidUtf8("\xE2\x82z"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98z"));
}

TEST(Utf8Test, TruncationDoesNotReadPastTheEnd) {
  // The view ends inside a sequence whose remaining bytes follow in memory.
  const std::string full = "\xE2\x82\xAC";
  EXPECT_TRUE(IsValidUtf8(full));
  EXPECT_FALSE(IsValidUtf8(std::string_view(full).substr(0, 2)));
  EXPECT_FALSE(IsValidUtf8(std::string_view(full).substr(0, 1)));
}

TEST(Utf8Test, StrayContinuationBytesAreRejected) {
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xBF"));
  EXPECT_FALSE(IsValidUtf8("a\x80z"));
  EXPECT_FALSE(IsValidUtf8("\xC3\xA9\xA9"));  // one continuation too many
}

// ASCII is checked eight bytes at a time: a zero byte, a non-ASCII byte or a bad sequence at every
// position of a long string, and at the edges of each eight-byte word, is still found.
TEST(Utf8Test, EveryPositionOfALongStringIsChecked) {
  const std::string ascii(40, 'a');
  EXPECT_TRUE(IsValidUtf8(ascii));
  for (size_t i = 0; i < ascii.size(); ++i) {
    std::string s = ascii;
    s[i] = '\0';
    EXPECT_FALSE(IsValidUtf8(s)) << "U+0000 at " << i;
    s[i] = '\x80';
    EXPECT_FALSE(IsValidUtf8(s)) << "stray continuation at " << i;
    s[i] = '\x7F';
    EXPECT_TRUE(IsValidUtf8(s)) << "DEL at " << i;
    if (i + 2 <= ascii.size()) {
      s = ascii;
      s.replace(i, 2, "\xC3\xA9");
      EXPECT_TRUE(IsValidUtf8(s)) << "U+00E9 at " << i;
      s[i + 1] = 'a';
      EXPECT_FALSE(IsValidUtf8(s)) << "truncated sequence at " << i;
    }
  }
}

}  // namespace
}  // namespace mqtt
