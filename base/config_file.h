// Reading a TOML configuration file so that every mistake in it gets a precise answer.
//
// A process reads its file through ConfigTable handles: each getter returns the value or the
// fallback when the key is absent, and records an error when the key is present but wrong. Errors
// name the file, the line, the full key and what was expected; keys that nothing read are
// reported as unknown, so a typo does not pass silently. The error nearest the top of the file
// wins.
//
//   absl::StatusOr<ConfigFile> file = ConfigFile::Load("conf/broker.toml");
//   if (!file.ok()) return file.status();
//   if (std::optional<ConfigTable> limits = file->root().Table("limits")) {
//     max_connections = limits->Integer("max_connections", 100000, 1, 10'000'000);
//   }
//   if (absl::Status s = file->Finish(); !s.ok()) return s;
//   // "conf/broker.toml:7: limits.max_connections: expected an integer from 1 to 10000000,
//   //  got -3"
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace base {

class ConfigFile;

// One table of the file; a cheap handle that stays valid as long as its ConfigFile.
class ConfigTable {
 public:
  std::string String(std::string_view key, std::string fallback) const;
  int64_t Integer(std::string_view key, int64_t fallback, int64_t min, int64_t max) const;
  bool Bool(std::string_view key, bool fallback) const;
  // A string that must be one of `choices`.
  std::string OneOf(std::string_view key, std::string fallback,
                    std::initializer_list<std::string_view> choices) const;

  // A sub-table ([name]); nullopt when absent.
  std::optional<ConfigTable> Table(std::string_view key) const;
  // An array of tables ([[name]]); empty when absent.
  std::vector<ConfigTable> Tables(std::string_view key) const;
  // Every sub-table of this table, by name ([pool.NAME] gives each NAME), in name order.
  std::vector<std::pair<std::string, ConfigTable>> NamedTables() const;

  bool Has(std::string_view key) const;
  // Records an error about `key` of this table that only the caller can judge.
  void Fail(std::string_view key, std::string_view expected) const;
  // The dotted path of this table ("pool.brokers"), empty for the root.
  const std::string& path() const;

 private:
  friend class ConfigFile;
  ConfigTable(ConfigFile* file, size_t index) : file_(file), index_(index) {}
  const void* Find(std::string_view key) const;  // a const toml::value*, or null

  ConfigFile* file_;
  size_t index_;
};

class ConfigFile {
 public:
  // Reads and parses `path`; a syntax error is reported with its line.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ConfigFile>> Load(const std::string& path);
  // Parses `text` as if read from a file called `name`; for tests.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ConfigFile>> Parse(const std::string& text,
                                                                         const std::string& name);
  ~ConfigFile();

  ConfigTable root() { return ConfigTable(this, 0); }
  // The recorded error nearest the top of the file, else an error for the first key nothing read,
  // else OK.
  [[nodiscard]] absl::Status Finish() const;

 private:
  friend class ConfigTable;
  struct State;
  explicit ConfigFile(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace base
