#include "core/allocator.h"

#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rewardgen {
namespace {

// mallopt's −1 turns trimming off (glibc's size_t threshold becomes SIZE_MAX); a tunable takes a
// number, and 2^62 bytes is never reached.
constexpr int kNoTrim = -1;
constexpr const char* kNoTrimTunable = "4611686018427387904";

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
  if (!user_set("MALLOC_TRIM_THRESHOLD_", "trim_threshold")) mallopt(M_TRIM_THRESHOLD, kNoTrim);
#endif
}

std::string allocator_tunables() {
  if (const char* tunables = std::getenv("GLIBC_TUNABLES")) return tunables;
  return std::string("glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=") + kNoTrimTunable;
}

}  // namespace rewardgen
