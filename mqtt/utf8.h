// UTF-8 validation for MQTT strings (MQTT 5.0 §1.5.4, 3.1.1 §1.5.3).
//
// A string is valid when it is well-formed UTF-8 (no overlong forms, no surrogates U+D800..U+DFFF,
// nothing above U+10FFFF) and does not contain U+0000. Other control characters and
// non-characters are allowed: the spec lets a receiver refuse them, and we choose not to.
#pragma once

#include <string_view>

namespace mqtt {

bool IsValidUtf8(std::string_view text);

}  // namespace mqtt
