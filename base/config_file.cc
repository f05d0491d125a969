// ConfigFile on toml11. toml11 reports syntax errors with file and line; everything about values
// (types, ranges, unknown keys) is checked here, so that all errors read alike.
#include "base/config_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <toml.hpp>

namespace base {

struct ConfigFile::State {
  struct Table {
    std::string path;
    const toml::value* value;
    std::set<std::string, std::less<>> read;
  };
  std::string name;
  toml::value root;
  std::vector<Table> tables;  // index 0 is the root
  std::string first_error;
  size_t first_error_line = 0;  // 0: no line

  size_t AddTable(std::string path, const toml::value* value) {
    tables.push_back({std::move(path), value, {}});
    return tables.size() - 1;
  }
  // Keeps the error nearest the top of the file rather than the first one found: values are read
  // in the program's order, which need not be the file's, and a reader fixes a file from the top.
  void Record(const toml::value* at, const std::string& key, std::string_view message) {
    size_t line = at != nullptr ? at->location().line() : 0;
    if (!first_error.empty() && (line == 0 || first_error_line == 0 || line >= first_error_line)) {
      return;
    }
    first_error_line = line;
    std::string where = line != 0 ? fmt::format(":{}", line) : "";
    first_error = fmt::format("{}{}: {}: {}", name, where, key, message);
  }
};

namespace {

std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

std::string Describe(const toml::value& v) {
  std::ostringstream out;
  out << v;
  std::string text = out.str();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

}  // namespace

ConfigFile::ConfigFile(std::unique_ptr<State> state) : state_(std::move(state)) {}
ConfigFile::~ConfigFile() = default;

absl::StatusOr<std::unique_ptr<ConfigFile>> ConfigFile::Parse(const std::string& text,
                                                              const std::string& name) {
  auto state = std::make_unique<State>();
  state->name = name;
  std::istringstream in(text);
  try {
    state->root = toml::parse(in, name);
  } catch (const toml::exception& e) {
    // toml11's text names the line only inside its excerpt of the file; lead with "file:line:"
    // like every other error here, and keep the excerpt after it.
    std::string_view what = e.what();
    if (what.starts_with("[error] ")) what.remove_prefix(8);
    return absl::InvalidArgumentError(
        fmt::format("{}:{}: invalid TOML: {}", name, e.location().line(), what));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: invalid TOML: {}", name, e.what()));
  }
  state->AddTable("", &state->root);
  return std::unique_ptr<ConfigFile>(new ConfigFile(std::move(state)));
}

absl::StatusOr<std::unique_ptr<ConfigFile>> ConfigFile::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(fmt::format("{}: cannot open the file", path));
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

absl::Status ConfigFile::Finish() const {
  if (!state_->first_error.empty()) return absl::InvalidArgumentError(state_->first_error);
  for (const State::Table& t : state_->tables) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : t.value->as_table())
      keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    for (const std::string& key : keys) {
      if (t.read.count(key) != 0) continue;
      const toml::value& v = t.value->as_table().at(key);
      return absl::InvalidArgumentError(fmt::format("{}:{}: {}: unknown key", state_->name,
                                                    v.location().line(), Join(t.path, key)));
    }
  }
  return absl::OkStatus();
}

const std::string& ConfigTable::path() const {
  return file_->state_->tables[index_].path;
}

const void* ConfigTable::Find(std::string_view key) const {
  ConfigFile::State::Table& t = file_->state_->tables[index_];
  t.read.emplace(key);
  const auto& table = t.value->as_table();
  auto it = table.find(std::string(key));
  return it == table.end() ? nullptr : &it->second;
}

bool ConfigTable::Has(std::string_view key) const {
  return Find(key) != nullptr;
}

void ConfigTable::Fail(std::string_view key, std::string_view expected) const {
  auto* v = static_cast<const toml::value*>(Find(key));
  // A key that is missing has no line of its own: name the line of the table that lacks it.
  if (v == nullptr && index_ != 0) v = file_->state_->tables[index_].value;
  file_->state_->Record(v, Join(path(), key), expected);
}

std::string ConfigTable::String(std::string_view key, std::string fallback) const {
  auto* v = static_cast<const toml::value*>(Find(key));
  if (v == nullptr) return fallback;
  if (!v->is_string()) {
    file_->state_->Record(v, Join(path(), key), "expected a string, got " + Describe(*v));
    return fallback;
  }
  return v->as_string().str;
}

int64_t ConfigTable::Integer(std::string_view key, int64_t fallback, int64_t min,
                             int64_t max) const {
  auto* v = static_cast<const toml::value*>(Find(key));
  if (v == nullptr) return fallback;
  if (!v->is_integer() || v->as_integer() < min || v->as_integer() > max) {
    file_->state_->Record(
        v, Join(path(), key),
        fmt::format("expected an integer from {} to {}, got {}", min, max, Describe(*v)));
    return fallback;
  }
  return v->as_integer();
}

bool ConfigTable::Bool(std::string_view key, bool fallback) const {
  auto* v = static_cast<const toml::value*>(Find(key));
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) {
    file_->state_->Record(v, Join(path(), key), "expected true or false, got " + Describe(*v));
    return fallback;
  }
  return v->as_boolean();
}

std::string ConfigTable::OneOf(std::string_view key, std::string fallback,
                               std::initializer_list<std::string_view> choices) const {
  auto* v = static_cast<const toml::value*>(Find(key));
  if (v == nullptr) return fallback;
  if (v->is_string() &&
      std::find(choices.begin(), choices.end(), v->as_string().str) != choices.end()) {
    return v->as_string().str;
  }
  file_->state_->Record(
      v, Join(path(), key),
      fmt::format("expected one of \"{}\", got {}", fmt::join(choices, "\", \""), Describe(*v)));
  return fallback;
}

std::optional<ConfigTable> ConfigTable::Table(std::string_view key) const {
  auto* v = static_cast<const toml::value*>(Find(key));
  if (v == nullptr) return std::nullopt;
  if (!v->is_table()) {
    file_->state_->Record(v, Join(path(), key), "expected a table");
    return std::nullopt;
  }
  return ConfigTable(file_, file_->state_->AddTable(Join(path(), key), v));
}

std::vector<ConfigTable> ConfigTable::Tables(std::string_view key) const {
  auto* v = static_cast<const toml::value*>(Find(key));
  std::vector<ConfigTable> out;
  if (v == nullptr) return out;
  if (!v->is_array()) {
    file_->state_->Record(v, Join(path(), key), "expected an array of tables ([[...]])");
    return out;
  }
  const auto& items = v->as_array();
  for (size_t i = 0; i < items.size(); ++i) {
    std::string item_path = fmt::format("{}[{}]", Join(path(), key), i);
    if (!items[i].is_table()) {
      file_->state_->Record(&items[i], item_path, "expected a table");
      continue;
    }
    out.push_back(ConfigTable(file_, file_->state_->AddTable(item_path, &items[i])));
  }
  return out;
}

std::vector<std::pair<std::string, ConfigTable>> ConfigTable::NamedTables() const {
  std::vector<std::string> keys;
  for (const auto& [key, value] : file_->state_->tables[index_].value->as_table()) {
    keys.push_back(key);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::pair<std::string, ConfigTable>> out;
  for (const std::string& key : keys) {
    if (std::optional<ConfigTable> t = Table(key)) out.emplace_back(key, *t);
  }
  return out;
}

}  // namespace base
