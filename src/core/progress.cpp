#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

namespace rewardgen {

bool live_progress_wanted() {
  const char* ci = std::getenv("CI");
  const bool in_ci = ci != nullptr && std::strcmp(ci, "") != 0 && std::strcmp(ci, "false") != 0 &&
                     std::strcmp(ci, "0") != 0;
  return !in_ci && isatty(STDERR_FILENO) == 1;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600)
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buffer, sizeof buffer, "%02lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buffer;
}

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start, ProgressOptions options)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 0)),
      start_(start),
      done_(start),
      mode_(options.mode),
      out_(options.out ? options.out : &std::cerr),
      plain_interval_s_(options.plain_interval_s),
      plain_step_(std::max<int64_t>(1, total_ / std::max(1, options.plain_lines))),
      t0_(Clock::now()),
      last_print_(t0_) {
  if (mode_ == ProgressMode::automatic)
    mode_ = live_progress_wanted() ? ProgressMode::live : ProgressMode::plain;
}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_s() const {
  return std::chrono::duration<double>(Clock::now() - t0_).count();
}

std::string ProgressBar::render(bool for_terminal) const {
  const double elapsed = elapsed_s();
  const double rate = elapsed > 0 ? static_cast<double>(done_ - start_) / elapsed : 0.0;
  const double left = rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  char rate_text[32];
  std::snprintf(rate_text, sizeof rate_text, rate >= 1 || rate == 0 ? "%.2f it/s" : "%.2f s/it",
                rate >= 1 || rate == 0 ? rate : 1.0 / rate);
  std::ostringstream line;
  if (for_terminal) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    line << '\r' << label_ << ' ' << static_cast<int>(fraction * 100) << "% |";
    for (int i = 0; i < kWidth; ++i) line << (i < filled ? '#' : '.');
    line << "| " << done_ << '/' << total_ << " [" << format_duration(elapsed) << '<'
         << format_duration(left) << ", " << rate_text << ']';
    if (!postfix_.empty()) line << ' ' << postfix_;
    line << "\x1b[K";  // clear what a longer previous line left behind
  } else {
    line << label_ << ": " << done_ << '/' << total_ << " (" << static_cast<int>(fraction * 100)
         << "%) " << format_duration(elapsed) << " elapsed, " << format_duration(left) << " left, "
         << rate_text;
    if (!postfix_.empty()) line << ", " << postfix_;
    line << '\n';
  }
  return line.str();
}

void ProgressBar::update(int64_t done, const std::string& postfix) {
  if (finished_ || mode_ == ProgressMode::off) return;
  done_ = std::min(done, total_);
  postfix_ = postfix;
  const auto now = Clock::now();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  bool print = false;
  if (mode_ == ProgressMode::live)
    print = since_print >= 0.1 || done_ == total_;
  else
    print = done_ / plain_step_ != last_printed_done_ / plain_step_ || since_print >= plain_interval_s_;
  if (!print || done_ == last_printed_done_) return;
  *out_ << render(mode_ == ProgressMode::live) << std::flush;
  last_print_ = now;
  last_printed_done_ = done_;
}

void ProgressBar::finish() {
  if (finished_ || mode_ == ProgressMode::off) return;
  if (done_ != last_printed_done_) *out_ << render(mode_ == ProgressMode::live);
  if (mode_ == ProgressMode::live) *out_ << '\n';
  out_->flush();
  finished_ = true;
}

}  // namespace rewardgen
