#include "core/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>

namespace rewardgen {
namespace {

volatile std::sig_atomic_t caught_signal = 0;
std::atomic<bool> catcher_alive{false};
struct sigaction previous_int, previous_term;

void on_signal(int signal) {
  if (caught_signal != 0) {  // the second one: end now, as if never caught
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    return;
  }
  caught_signal = signal;
  static const char message[] = "\nrewardgen: stopping after this step with a checkpoint (signal again to end at once)\n";
  const ssize_t ignored = ::write(STDERR_FILENO, message, sizeof message - 1);  // async-signal-safe
  (void)ignored;
}

}  // namespace

InterruptCatcher::InterruptCatcher() {
  if (catcher_alive.exchange(true)) throw Error("an InterruptCatcher is already alive in this process");
  caught_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, &previous_int);
  ::sigaction(SIGTERM, &action, &previous_term);
}

InterruptCatcher::~InterruptCatcher() {
  ::sigaction(SIGINT, &previous_int, nullptr);
  ::sigaction(SIGTERM, &previous_term, nullptr);
  catcher_alive = false;
}

int InterruptCatcher::signal() const { return caught_signal; }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "a signal";
  }
}

}  // namespace rewardgen
