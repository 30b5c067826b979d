#pragma once
// The machine's measured fp32 GEMM throughput: the peak that later MFU figures are divided by.
#include <cstdint>

namespace rewardgen {

struct GemmMeasurement {
  int threads = 1;
  int64_t n = 0;              // C[n,n] = A[n,n] B[n,n]
  int repeats = 0;
  double best_gflops = 0.0;   // 2n³ / fastest time
  double median_gflops = 0.0;
};

// Times at::mm_out for about `min_seconds` after a warm-up, on `threads` intra-op threads, and
// restores the previous thread count.
GemmMeasurement measure_gemm(int threads, int64_t n, double min_seconds);

}  // namespace rewardgen
