#include "core/log.h"

#include <iostream>

#include "core/error.h"

namespace rewardgen {

LogLevel parse_log_level(const std::string& name) {
  if (name == "debug") return LogLevel::debug;
  if (name == "info") return LogLevel::info;
  if (name == "warn") return LogLevel::warn;
  if (name == "error") return LogLevel::error;
  if (name == "quiet") return LogLevel::quiet;
  throw Error(str("unknown log level '", name, "' (allowed: debug, info, warn, error, quiet)"));
}

Logger::Logger(LogLevel level) : Logger(level, std::cerr) {}
Logger::Logger(LogLevel level, std::ostream& sink) : level_(level), sink_(&sink) {}

void Logger::write(LogLevel level, const std::string& message) const {
  if (!enabled(level)) return;
  static constexpr const char* kTags[] = {"debug", "info", "warning", "error"};
  // Info lines go out bare; the other levels carry their tag so that they stand out in CI logs.
  if (level == LogLevel::info)
    *sink_ << message << '\n';
  else
    *sink_ << kTags[static_cast<int>(level)] << ": " << message << '\n';
  sink_->flush();
}

}  // namespace rewardgen
