// The access log's logger and line.
#include "proxy/access_log.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace proxy {

namespace {

// The default logger's sink and pattern under its own name and level: access lines are not
// diagnostics, and log_level = "warn" does not silence them.
spdlog::logger& AccessLogger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    std::shared_ptr<spdlog::logger> l = spdlog::default_logger()->clone("access");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return *logger;
}

}  // namespace

void LogAccess(const AccessRecord& r) {
  std::string id = r.client_id ? fmt::format("{:?}", *r.client_id) : "-";
  auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - r.accepted_at);
  std::string address = r.client.address().to_string();
  if (r.client.address().is_v6()) address = "[" + address + "]";
  AccessLogger().info("{} {}:{} {} {}/{} {}ms in={} out={} {}", r.listener, address,
                      r.client.port(), id, r.pool, r.backend.empty() ? "-" : r.backend,
                      duration.count(), r.bytes_from_client, r.bytes_to_client, r.outcome);
}

}  // namespace proxy
