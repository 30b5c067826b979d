#pragma once
// Leveled logging to a sink the caller owns (stderr by default); no global logger.
#include <iosfwd>
#include <string>

namespace rewardgen {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, quiet = 4 };

// Parses "debug" | "info" | "warn" | "error" | "quiet"; throws Error naming the allowed values.
LogLevel parse_log_level(const std::string& name);

class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::info);  // writes to std::cerr
  Logger(LogLevel level, std::ostream& sink);

  void debug(const std::string& message) const { write(LogLevel::debug, message); }
  void info(const std::string& message) const { write(LogLevel::info, message); }
  void warn(const std::string& message) const { write(LogLevel::warn, message); }
  void error(const std::string& message) const { write(LogLevel::error, message); }

  bool enabled(LogLevel level) const { return level >= level_; }
  LogLevel level() const { return level_; }
  void set_level(LogLevel level) { level_ = level; }

 private:
  void write(LogLevel level, const std::string& message) const;
  LogLevel level_;
  std::ostream* sink_;
};

}  // namespace rewardgen
