#include "io/json_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"

namespace rewardgen {

Json load_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    // e.byte is the 1-based offset of the error; give the line and column a person can find.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') { ++line; column = 1; } else { ++column; }
    }
    throw Error(str(path, ":", line, ":", column, ": invalid JSON: ", e.what()));
  } catch (const Json::exception& e) {  // e.g. a number beyond a double (1e999)
    throw Error(str(path, ": invalid JSON: ", e.what()));
  }
}

void save_json_file(const std::string& path, const Json& value) { write_file_atomic(path, value.dump(2) + "\n"); }

// ---------------------------------------------------------------------------------------------
// ranges

bool Range::contains(double v) const {
  if (!std::isfinite(v)) return false;  // an open upper end still means a finite number
  const bool above = min_open ? v > min : v >= min;
  const bool below = max_open ? v < max : v <= max;
  return above && below;
}

namespace {
// Whole bounds as integers (4194304, not 4.1943e+06).
std::string bound_text(double v) {
  return std::abs(v) < 1e15 && v == std::floor(v) ? std::to_string(static_cast<int64_t>(v)) : str(v);
}
}  // namespace

std::string Range::describe() const {
  const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
  if (has_min && has_max) return str(min_open ? "(" : "[", bound_text(min), ", ", bound_text(max), max_open ? ")" : "]");
  if (has_min) return str(min_open ? "> " : ">= ", bound_text(min));
  if (has_max) return str(max_open ? "< " : "<= ", bound_text(max));
  return "finite";
}

Range at_least(double min) { return Range{min}; }
Range positive() { return Range{0.0, std::numeric_limits<double>::infinity(), true, false}; }
Range between(double min, double max) { return Range{min, max}; }

// ---------------------------------------------------------------------------------------------
// typed conversion

namespace {

// Strict conversions: 1.5 is not an int, "1" is not a number, 1 is not a bool.
bool convert(const Json& j, bool& out) { return j.is_boolean() ? (out = j.get<bool>(), true) : false; }
bool convert(const Json& j, int64_t& out) { return j.is_number_integer() ? (out = j.get<int64_t>(), true) : false; }
bool convert(const Json& j, int& out) {
  if (!j.is_number_integer()) return false;
  const int64_t v = j.get<int64_t>();
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) return false;
  out = static_cast<int>(v);
  return true;
}
bool convert(const Json& j, double& out) { return j.is_number() ? (out = j.get<double>(), true) : false; }
bool convert(const Json& j, std::string& out) { return j.is_string() ? (out = j.get<std::string>(), true) : false; }
template <class T>
bool convert(const Json& j, std::vector<T>& out) {
  if (!j.is_array()) return false;
  std::vector<T> values(j.size());
  for (size_t i = 0; i < j.size(); ++i)
    if (!convert(j[i], values[i])) return false;
  out = std::move(values);
  return true;
}

template <class T> constexpr const char* type_name();
template <> constexpr const char* type_name<bool>() { return "true or false"; }
template <> constexpr const char* type_name<int>() { return "an integer"; }
template <> constexpr const char* type_name<int64_t>() { return "an integer"; }
template <> constexpr const char* type_name<double>() { return "a number"; }
template <> constexpr const char* type_name<std::string>() { return "a string"; }
template <> constexpr const char* type_name<std::vector<int64_t>>() { return "an array of integers"; }
template <> constexpr const char* type_name<std::vector<double>>() { return "an array of numbers"; }
template <> constexpr const char* type_name<std::vector<std::string>>() { return "an array of strings"; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// reader

ConfigReader::ConfigReader(const Json& object, std::string file)
    : ConfigReader(object, std::move(file), "", std::make_shared<Seen>()) {}

ConfigReader::ConfigReader(const Json& object, std::string file, std::string prefix, std::shared_ptr<Seen> seen)
    : object_(&object), file_(std::move(file)), prefix_(std::move(prefix)), seen_(std::move(seen)) {
  if (!object.is_object())
    throw Error(str(file_, ": ", prefix_.empty() ? std::string("the config") : str("key '", prefix_, "'"),
                    " must be a JSON object, got ", object.dump()));
}

bool ConfigReader::has(const std::string& key) const { return object_->contains(key) && !(*object_)[key].is_null(); }

const Json* ConfigReader::find(const std::string& key) {
  const auto it = object_->find(key);
  if (it == object_->end()) return nullptr;
  seen_->keys.insert(prefix_ + key);
  return it->is_null() ? nullptr : &*it;
}

void ConfigReader::type_error(const std::string& key, const char* expected, const Json& value) const {
  throw Error(str(file_, ": key '", prefix_, key, "' must be ", expected, ", got ", value.dump()));
}

void ConfigReader::range_error(const std::string& key, const Range& range, const Json& value) const {
  throw Error(str(file_, ": key '", prefix_, key, "' must be ", range.describe(), ", got ", value.dump()));
}

template <class T>
ConfigReader& ConfigReader::optional(const std::string& key, T& out) {
  if (const Json* value = find(key))
    if (!convert(*value, out)) type_error(key, type_name<T>(), *value);
  return *this;
}

template <class T>
ConfigReader& ConfigReader::required(const std::string& key, T& out) {
  if (!has(key)) throw Error(str(file_, ": missing required key '", prefix_, key, "' (", type_name<T>(), ")"));
  return optional(key, out);
}

template <class T>
ConfigReader& ConfigReader::optional(const std::string& key, T& out, const Range& range) {
  static_assert(std::is_arithmetic_v<T>, "ranges apply to numbers");
  optional(key, out);
  if (has(key) && !range.contains(static_cast<double>(out))) range_error(key, range, (*object_)[key]);
  return *this;
}

template <class T>
void ConfigReader::check_elements(const std::string& key, const std::vector<T>& values, const Range& range) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (!range.contains(static_cast<double>(values[i]))) range_error(str(key, "[", i, "]"), range, Json(values[i]));
}

ConfigReader& ConfigReader::optional(const std::string& key, std::vector<int64_t>& out, const Range& range) {
  optional(key, out);
  if (has(key)) check_elements(key, out, range);
  return *this;
}

ConfigReader& ConfigReader::optional(const std::string& key, std::vector<double>& out, const Range& range) {
  optional(key, out);
  if (has(key)) check_elements(key, out, range);
  return *this;
}

template <class T>
ConfigReader& ConfigReader::required(const std::string& key, T& out, const Range& range) {
  if (!has(key)) throw Error(str(file_, ": missing required key '", prefix_, key, "' (", type_name<T>(), ", ", range.describe(), ")"));
  return optional(key, out, range);
}

ConfigReader& ConfigReader::optional_choice(const std::string& key, std::string& out,
                                            const std::vector<std::string>& allowed) {
  optional(key, out);
  for (const std::string& a : allowed)
    if (out == a) return *this;
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw Error(str(file_, ": key '", prefix_, key, "' must be one of {", list, "}, got \"", out, "\""));
}

ConfigReader& ConfigReader::optional_int_or_list(const std::string& key, std::vector<int64_t>& out) {
  const Json* value = find(key);
  if (value == nullptr) return *this;
  int64_t single = 0;
  if (convert(*value, single))
    out = {single};
  else if (!convert(*value, out))
    type_error(key, "an integer or an array of integers", *value);
  return *this;
}

ConfigReader& ConfigReader::optional_int_or_list(const std::string& key, std::vector<int64_t>& out, const Range& range) {
  optional_int_or_list(key, out);
  if (!has(key)) return *this;
  if ((*object_)[key].is_number() && !range.contains(static_cast<double>(out[0]))) range_error(key, range, (*object_)[key]);
  check_elements(key, out, range);
  return *this;
}

ConfigReader ConfigReader::child(const std::string& key) {
  static const Json kEmpty = Json::object();
  const Json* value = find(key);
  if (value != nullptr && !value->is_object()) type_error(key, "an object", *value);
  seen_->objects.insert(prefix_ + key);
  return ConfigReader(value ? *value : kEmpty, file_, prefix_ + key + ".", seen_);
}

void ConfigReader::collect_unknown(const Json& object, const std::string& prefix,
                                   std::vector<std::string>& out) const {
  for (const auto& [key, value] : object.items()) {
    const std::string path = prefix + key;
    if (!key.empty() && key[0] == '_') continue;  // metadata such as diffusers' "_class_name"
    if (seen_->objects.count(path) && value.is_object())
      collect_unknown(value, path + ".", out);
    else if (!seen_->keys.count(path))
      out.push_back(path);
  }
}

std::vector<std::string> ConfigReader::unknown_keys() const {
  std::vector<std::string> out;
  collect_unknown(*object_, prefix_, out);
  return out;
}

namespace {
std::string join_quoted(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& k : keys) out += (out.empty() ? "'" : ", '") + k + "'";
  return out;
}
}  // namespace

void ConfigReader::warn_unknown(const Logger& log) const {
  const auto unknown = unknown_keys();
  if (!unknown.empty()) log.warn(str(file_, ": ignoring unknown key(s) ", join_quoted(unknown)));
}

void ConfigReader::reject_unknown() const {
  const auto unknown = unknown_keys();
  if (!unknown.empty()) throw Error(str(file_, ": unknown key(s) ", join_quoted(unknown)));
}

// The supported instantiations.
template ConfigReader& ConfigReader::optional<bool>(const std::string&, bool&);
template ConfigReader& ConfigReader::optional<int>(const std::string&, int&);
template ConfigReader& ConfigReader::optional<int64_t>(const std::string&, int64_t&);
template ConfigReader& ConfigReader::optional<double>(const std::string&, double&);
template ConfigReader& ConfigReader::optional<std::string>(const std::string&, std::string&);
template ConfigReader& ConfigReader::optional<std::vector<int64_t>>(const std::string&, std::vector<int64_t>&);
template ConfigReader& ConfigReader::optional<std::vector<double>>(const std::string&, std::vector<double>&);
template ConfigReader& ConfigReader::optional<std::vector<std::string>>(const std::string&, std::vector<std::string>&);
template ConfigReader& ConfigReader::required<bool>(const std::string&, bool&);
template ConfigReader& ConfigReader::required<int>(const std::string&, int&);
template ConfigReader& ConfigReader::required<int64_t>(const std::string&, int64_t&);
template ConfigReader& ConfigReader::required<double>(const std::string&, double&);
template ConfigReader& ConfigReader::required<std::string>(const std::string&, std::string&);
template ConfigReader& ConfigReader::required<std::vector<int64_t>>(const std::string&, std::vector<int64_t>&);
template ConfigReader& ConfigReader::required<std::vector<double>>(const std::string&, std::vector<double>&);
template ConfigReader& ConfigReader::required<std::vector<std::string>>(const std::string&, std::vector<std::string>&);
template ConfigReader& ConfigReader::optional<int>(const std::string&, int&, const Range&);
template ConfigReader& ConfigReader::optional<int64_t>(const std::string&, int64_t&, const Range&);
template ConfigReader& ConfigReader::optional<double>(const std::string&, double&, const Range&);
template ConfigReader& ConfigReader::required<int>(const std::string&, int&, const Range&);
template ConfigReader& ConfigReader::required<int64_t>(const std::string&, int64_t&, const Range&);
template ConfigReader& ConfigReader::required<double>(const std::string&, double&, const Range&);

}  // namespace rewardgen
