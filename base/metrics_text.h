// The Prometheus text exposition format (version 0.0.4), written by hand: families of samples,
// each family with its HELP and TYPE lines once.
//
//   MetricsText m;
//   m.Family("sb_connections", "gauge", "Open client connections.");
//   m.Sample("sb_connections", 12);
//   m.Family("sb_messages_received_total", "counter", "PUBLISH packets received.");
//   m.Sample("sb_messages_received_total", 100, {{"qos", "1"}});
//   std::string body = std::move(m).Take();
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace base {

class MetricsText {
 public:
  using Label = std::pair<std::string_view, std::string_view>;

  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, double value, std::initializer_list<Label> labels = {});
  std::string Take() && { return std::move(out_); }

 private:
  std::string out_;
};

// The content type of the exposition format.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4";

}  // namespace base
