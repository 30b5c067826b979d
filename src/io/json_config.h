#pragma once
// Config files are JSON objects read into plain structs whose members hold the defaults. A
// ConfigReader reads typed keys into those members, checks types and ranges, and remembers
// which keys it was asked for so that the rest can be reported as unknown. Every error names
// the file, the dotted key and the value. A key whose value is null counts as absent (diffusers
// writes None that way); keys starting with '_' (diffusers' "_class_name", ...) are never unknown.
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace rewardgen {

class Logger;
using Json = nlohmann::json;

// Parses a JSON file; throws Error naming the file, line and column of a syntax error.
Json load_json_file(const std::string& path);
// Writes `value` pretty-printed, atomically.
void save_json_file(const std::string& path, const Json& value);

// Closed or open numeric interval for range checks.
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;
  bool contains(double v) const;
  std::string describe() const;  // "(0, 1]", ">= 1", ...
};
Range at_least(double min);
Range positive();  // (0, inf)
Range between(double min, double max);  // [min, max]

class ConfigReader {
 public:
  // `object` must outlive the reader; `file` names the source in messages.
  ConfigReader(const Json& object, std::string file);
  ConfigReader(Json&& temporary, std::string file) = delete;  // it would dangle after the statement

  bool has(const std::string& key) const;
  // Reads `key` into `out` when present, leaving the default otherwise. Supported: bool, int,
  // int64_t, double, std::string, std::vector of int64_t / double / std::string.
  template <class T>
  ConfigReader& optional(const std::string& key, T& out);
  template <class T>
  ConfigReader& required(const std::string& key, T& out);  // missing key -> Error
  template <class T>
  ConfigReader& optional(const std::string& key, T& out, const Range& range);  // numbers
  template <class T>
  ConfigReader& required(const std::string& key, T& out, const Range& range);  // numbers
  // Arrays of numbers with every element in `range` (e.g. channel counts >= 1).
  ConfigReader& optional(const std::string& key, std::vector<int64_t>& out, const Range& range);
  ConfigReader& optional(const std::string& key, std::vector<double>& out, const Range& range);
  ConfigReader& optional_choice(const std::string& key, std::string& out, const std::vector<std::string>& allowed);
  // diffusers configs give some per-block settings as one integer or as a list: both become a list.
  ConfigReader& optional_int_or_list(const std::string& key, std::vector<int64_t>& out);
  ConfigReader& optional_int_or_list(const std::string& key, std::vector<int64_t>& out, const Range& range);

  // A nested object; an absent key gives an empty object. Keys read through it count as known.
  ConfigReader child(const std::string& key);

  const Json& object() const { return *object_; }
  const std::string& file() const { return file_; }
  void mark_read(const std::string& key) { seen_->keys.insert(prefix_ + key); }  // checked by hand

  // Dotted paths of keys present but never read, e.g. {"train.lrr"}.
  std::vector<std::string> unknown_keys() const;
  void warn_unknown(const Logger& log) const;  // one warning naming them all, if any
  void reject_unknown() const;                 // Error naming them, if any

 private:
  struct Seen {
    std::set<std::string> keys, objects;
  };
  ConfigReader(const Json& object, std::string file, std::string prefix, std::shared_ptr<Seen> seen);
  const Json* find(const std::string& key);  // marks the key as read
  [[noreturn]] void type_error(const std::string& key, const char* expected, const Json& value) const;
  [[noreturn]] void range_error(const std::string& key, const Range& range, const Json& value) const;
  template <class T>
  void check_elements(const std::string& key, const std::vector<T>& values, const Range& range) const;
  void collect_unknown(const Json& object, const std::string& prefix, std::vector<std::string>& out) const;

  const Json* object_;
  std::string file_, prefix_;
  std::shared_ptr<Seen> seen_;
};

}  // namespace rewardgen
