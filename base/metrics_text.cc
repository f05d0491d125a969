// Prometheus text format writer.
#include "base/metrics_text.h"

#include <fmt/format.h>

#include <cmath>

namespace base {
namespace {

// Label values escape backslash, double quote and newline.
void AppendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

void MetricsText::Family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void MetricsText::Sample(std::string_view name, double value, std::initializer_list<Label> labels) {
  out_.append(name);
  if (labels.size() > 0) {
    out_.push_back('{');
    bool first = true;
    for (const auto& [key, label_value] : labels) {
      if (!first) out_.push_back(',');
      first = false;
      out_.append(key);
      out_.append("=\"");
      AppendEscaped(out_, label_value);
      out_.push_back('"');
    }
    out_.push_back('}');
  }
  out_.push_back(' ');
  if (value == std::floor(value) && std::abs(value) < 1e15) {
    fmt::format_to(std::back_inserter(out_), "{}", static_cast<int64_t>(value));
  } else {
    fmt::format_to(std::back_inserter(out_), "{}", value);
  }
  out_.push_back('\n');
}

}  // namespace base
