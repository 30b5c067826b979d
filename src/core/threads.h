#pragma once
// Intra-op thread count. LibTorch here starts with 1 thread; we default to every core.

namespace rewardgen {

int hardware_cores();  // >= 1

// Sets ATen's (and through OpenMP, OpenBLAS's) intra-op threads; 0 means hardware_cores().
// Throws Error for a negative count. Returns the count in force.
int set_threads(int threads);

}  // namespace rewardgen
