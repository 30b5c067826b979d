#include "core/allocator.h"

#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rewardgen {
namespace {

constexpr long kTrimThreshold = 1024L * 1024 * 1024;

bool user_set(const char* variable, const char* tunable) {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return std::getenv(variable) != nullptr || (tunables != nullptr && std::strstr(tunables, tunable) != nullptr);
}

bool user_set_mmap() {
  return user_set("MALLOC_MMAP_THRESHOLD_", "mmap_threshold") || user_set("MALLOC_MMAP_MAX_", "mmap_max");
}

}  // namespace

void tune_allocator() {
#if defined(__GLIBC__)
  if (!user_set_mmap()) mallopt(M_MMAP_MAX, 0);
  if (!user_set("MALLOC_TRIM_THRESHOLD_", "trim_threshold")) mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
#endif
}

std::string allocator_tunables() {
  if (const char* tunables = std::getenv("GLIBC_TUNABLES")) return tunables;
  return "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=" + std::to_string(kTrimThreshold);
}

}  // namespace rewardgen
