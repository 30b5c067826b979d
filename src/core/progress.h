#pragma once
// Progress of long work. On a terminal: one live bar redrawn in place. Elsewhere (a pipe, a file,
// CI=true): a plain line every tenth of the work or every `plain_interval_s` seconds, whichever
// comes first, so that logs stay short and readable.
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace rewardgen {

enum class ProgressMode { automatic, live, plain, off };

struct ProgressOptions {
  ProgressMode mode = ProgressMode::automatic;  // automatic: live on a TTY unless CI is set
  std::ostream* out = nullptr;                  // nullptr: std::cerr
  double plain_interval_s = 30.0;
  int plain_lines = 10;                         // plain mode: a line per 1/plain_lines of the work
};

// True when stderr is a terminal and the CI environment variable is unset or "false".
bool live_progress_wanted();

class ProgressBar {
 public:
  // `start` > 0 when resuming: rates and ETA count only the work done in this process.
  ProgressBar(std::string label, int64_t total, int64_t start = 0, ProgressOptions options = {});
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // `done` items of `total` are complete; `postfix` is shown after the bar (e.g. "loss=0.12").
  void update(int64_t done, const std::string& postfix = "");
  void finish();  // prints the final state once; idempotent

  bool live() const { return mode_ == ProgressMode::live; }

 private:
  using Clock = std::chrono::steady_clock;
  std::string render(bool for_terminal) const;
  double elapsed_s() const;

  std::string label_, postfix_;
  int64_t total_, start_, done_;
  ProgressMode mode_;
  std::ostream* out_;
  double plain_interval_s_;
  int64_t plain_step_;
  Clock::time_point t0_, last_print_;
  int64_t last_printed_done_ = -1;
  bool finished_ = false;
};

// "1:02:03" or "02:03" for a duration in seconds.
std::string format_duration(double seconds);

}  // namespace rewardgen
