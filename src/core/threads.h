#pragma once
// Intra-op thread count. LibTorch here starts with 1 thread; we default to every core.

namespace rewardgen {

int hardware_cores();  // >= 1

// The thread count for a request (0: every core), at most `cores`: more threads than cores only
// contend (OpenMP workers spin-wait). `capped` tells whether a request was lowered. Throws Error
// for a negative request.
int usable_threads(int requested, int cores, bool* capped = nullptr);

// Sets ATen's (and through OpenMP, OpenBLAS's) intra-op threads to usable_threads(threads,
// hardware_cores()): 0 means every core, more are lowered to them. Throws Error for a negative
// count. Returns the count in force.
int set_threads(int threads);

}  // namespace rewardgen
