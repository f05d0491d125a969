// Topic rules, walked one level at a time with no allocation.
#include "mqtt/topic.h"

#include <algorithm>
#include <cstdint>

namespace mqtt {
namespace {

// Yields the levels of a topic or filter; an empty string has no levels, "a/" has two.
class Levels {
 public:
  explicit Levels(std::string_view s) : rest_(s), done_(s.empty()) {}
  bool done() const { return done_; }
  bool first() const { return first_; }
  std::string_view Next() {
    size_t slash = rest_.find('/');
    std::string_view level = rest_.substr(0, slash);
    if (slash == std::string_view::npos) {
      done_ = true;
      rest_ = {};
    } else {
      rest_.remove_prefix(slash + 1);
    }
    return level;
  }
  // Marks the level just read as not the first one any more.
  void Advance() { first_ = false; }

 private:
  std::string_view rest_;
  bool done_;
  bool first_ = true;
};

bool IsDollar(std::string_view level) {
  return !level.empty() && level[0] == '$';
}
bool IsWildcard(std::string_view level) {
  return level == "+" || level == "#";
}
// find_first_of("+#") looks each character up in the set with a call of its own.
bool HasWildcardChar(std::string_view s) {
  return std::ranges::any_of(s, [](char c) { return c == '+' || c == '#'; });
}

}  // namespace

bool IsValidTopicName(std::string_view topic) {
  return !topic.empty() && topic.size() <= UINT16_MAX && !HasWildcardChar(topic);
}

bool IsValidTopicFilter(std::string_view filter) {
  if (filter.empty() || filter.size() > UINT16_MAX) return false;
  Levels levels(filter);
  while (!levels.done()) {
    std::string_view level = levels.Next();
    if (level == "#") return levels.done();
    if (level != "+" && HasWildcardChar(level)) return false;
  }
  return true;
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  Levels f(filter), t(topic);
  bool first = true;
  while (!f.done()) {
    std::string_view fl = f.Next();
    if (fl == "#") return !(first && IsDollar(topic));
    if (t.done()) return false;
    std::string_view tl = t.Next();
    if (fl == "+") {
      if (first && IsDollar(tl)) return false;
    } else if (fl != tl) {
      return false;
    }
    first = false;
  }
  return t.done();
}

bool FilterCovers(std::string_view outer, std::string_view inner) {
  Levels o(outer), i(inner);
  bool first = true;
  while (!o.done()) {
    std::string_view ol = o.Next();
    if (ol == "#") {
      // Everything below, unless `inner` names '$' topics that a leading '#' never matches.
      return !(first && !i.done() && IsDollar(i.Next()));
    }
    if (i.done()) return false;
    std::string_view il = i.Next();
    // Only '#' covers '#', and "+/#", which matches every topic that a whole-filter '#' does.
    if (il == "#") return first && ol == "+" && !o.done() && o.Next() == "#";
    if (ol == "+") {
      if (first && IsDollar(il)) return false;
    } else if (ol != il) {
      return false;  // a literal covers only itself, not '+'
    }
    first = false;
  }
  return i.done();
}

bool FiltersOverlap(std::string_view a, std::string_view b) {
  Levels x(a), y(b);
  bool first = true;
  bool one_empty_level = false;  // the levels read so far are a single empty one
  while (!x.done() && !y.done()) {
    std::string_view xl = x.Next();
    std::string_view yl = y.Next();
    if (first && ((IsWildcard(xl) && IsDollar(yl)) || (IsWildcard(yl) && IsDollar(xl)))) {
      return false;
    }
    if (xl == "#" || yl == "#") return true;
    if (xl != "+" && yl != "+" && xl != yl) return false;
    one_empty_level = first && (xl.empty() || yl.empty());
    first = false;
  }
  if (x.done() && y.done()) return true;
  // One filter has levels left; they match the other's topics only if they are a lone '#', which
  // adds nothing to them. A single empty level is the zero-length topic, which is no topic name:
  // "+" and "/#" have no topic in common.
  Levels& longer = x.done() ? y : x;
  return longer.Next() == "#" && !one_empty_level;
}

std::optional<SharedFilter> ParseSharedFilter(std::string_view filter) {
  constexpr std::string_view kPrefix = "$share/";
  if (filter.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view rest = filter.substr(kPrefix.size());
  size_t slash = rest.find('/');
  SharedFilter shared;
  if (slash == std::string_view::npos || slash == 0) return shared;
  std::string_view group = rest.substr(0, slash);
  std::string_view inner = rest.substr(slash + 1);
  if (group.find_first_of("+#") != std::string_view::npos || !IsValidTopicFilter(inner)) {
    return shared;
  }
  return SharedFilter{group, inner};
}

}  // namespace mqtt
