#include "core/threads.h"

#include <ATen/Parallel.h>

#include <thread>

#include "core/error.h"

namespace rewardgen {

int hardware_cores() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int usable_threads(int requested, int cores, bool* capped) {
  if (requested < 0) throw Error(str("--threads must be >= 0 (0 = all cores), got ", requested));
  const int n = requested == 0 || requested > cores ? cores : requested;
  if (capped != nullptr) *capped = requested > cores;
  return n;
}

int set_threads(int threads) {
  at::set_num_threads(usable_threads(threads, hardware_cores()));
  return at::get_num_threads();
}

}  // namespace rewardgen
