#include "core/allocator.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rewardgen {

void tune_allocator() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const bool user_mmap = std::getenv("MALLOC_MMAP_THRESHOLD_") || (tunables && std::strstr(tunables, "mmap_threshold"));
  const bool user_trim = std::getenv("MALLOC_TRIM_THRESHOLD_") || (tunables && std::strstr(tunables, "trim_threshold"));
  if (!user_mmap) mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  if (!user_trim) mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
}

}  // namespace rewardgen
