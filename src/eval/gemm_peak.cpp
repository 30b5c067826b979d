#include "eval/gemm_peak.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/error.h"

namespace rewardgen {

GemmMeasurement measure_gemm(int threads, int64_t n, double min_seconds) {
  if (threads < 1 || n < 1) throw Error(str("gemm benchmark: threads and n must be >= 1, got ", threads, ", ", n));
  const int previous_threads = at::get_num_threads();
  at::set_num_threads(threads);
  at::NoGradGuard no_grad;
  const at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  at::Tensor c = at::empty({n, n});
  for (int i = 0; i < 2; ++i) at::mm_out(c, a, b);  // warm-up: thread pool, caches, page faults

  using Clock = std::chrono::steady_clock;
  std::vector<double> seconds;
  const auto start = Clock::now();
  while (seconds.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds) {
    const auto t = Clock::now();
    at::mm_out(c, a, b);
    seconds.push_back(std::chrono::duration<double>(Clock::now() - t).count());
  }
  at::set_num_threads(previous_threads);

  std::sort(seconds.begin(), seconds.end());
  const double flop = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  GemmMeasurement m;
  m.threads = threads;
  m.n = n;
  m.repeats = static_cast<int>(seconds.size());
  m.best_gflops = flop / seconds.front() / 1e9;
  m.median_gflops = flop / seconds[seconds.size() / 2] / 1e9;
  return m;
}

}  // namespace rewardgen
