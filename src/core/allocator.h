#pragma once
// glibc malloc settings for tensor workloads. LibTorch's CPU allocator is plain malloc/free, and
// glibc serves a large block (above a threshold that starts at 128 KiB and adapts upwards, at most
// 32 MiB) with mmap and returns it to the kernel on free, so every pass that allocates the same
// multi-MiB temporaries page-faults them in again. Measured on the world teacher's forward (batch 32,
// 2 threads): 524 k minor faults and 0.124 s per forward as shipped, 167 k faults and 0.102 s with
// the 32 MiB threshold, in one sitting. Blocks above 32 MiB (SD-sized activations) still came from
// mmap under that threshold; on a VM whose page faults cost ~15 µs each (docs/performance.md) the
// SD1.5 512² forward took 5.08 s with them, 4.11 s with every block from the heap. Trimming the
// heap's top costs the same faults once a process's peak passes the trim threshold: diffusers'
// SD1.5 512² forward read 14.8 s with a 1 GiB threshold and 4.73 s without trimming, ours 3.47 and
// 3.21 s (one sitting, 2 threads).
#include <string>

namespace rewardgen {

// Serves every block from the heap (no mmap'd blocks) and never trims the heap: memory freed after a
// peak stays with the process for the next pass (a job's resident size is its peak until it ends).
// Call first thing in main(); mmap settings (M_MMAP_MAX, M_MMAP_THRESHOLD) or M_TRIM_THRESHOLD the
// user set through GLIBC_TUNABLES or MALLOC_*_ are kept.
void tune_allocator();

// The same settings as GLIBC_TUNABLES text ("glibc.malloc.mmap_max=0:..."), for a child process
// whose speed is compared with ours (bench speed's diffusers timer): the user's GLIBC_TUNABLES
// when set, else ours.
std::string allocator_tunables();

}  // namespace rewardgen
