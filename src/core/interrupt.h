#pragma once
// SIGINT (Ctrl-C) and SIGTERM (what `kill` and job schedulers send) during training: the run
// finishes its current step, writes a checkpoint and ends with a message naming it, instead of
// dying mid-step. A second signal ends the process at once (the default action).
#include <string>

#include "core/error.h"

namespace rewardgen {

// While alive, SIGINT and SIGTERM are caught; the previous handlers come back at destruction.
// Process-wide by nature (a signal handler can only reach static state): one at a time.
class InterruptCatcher {
 public:
  InterruptCatcher();
  ~InterruptCatcher();
  InterruptCatcher(const InterruptCatcher&) = delete;
  InterruptCatcher& operator=(const InterruptCatcher&) = delete;

  int signal() const;  // the signal caught since construction, or 0
};

const char* signal_name(int signal);  // "SIGINT", "SIGTERM", else "a signal"

// A job that stopped on a signal after saving its state; main() exits with 128 + signal.
class InterruptedError : public Error {
 public:
  InterruptedError(int signal, const std::string& message) : Error(message), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace rewardgen
