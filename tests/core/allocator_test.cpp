#include "core/allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rewardgen {
namespace {

#if defined(__GLIBC__)
TEST(Allocator, LargeBlocksComeFromTheHeapNotFromMmap) {
  // test_main calls tune_allocator(): a 64 MiB block (twice glibc's largest mmap threshold) must
  // not be a mapping of its own, and freeing it must keep the memory (no trimming).
  if (std::getenv("GLIBC_TUNABLES") || std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_MMAP_THRESHOLD_"))
    GTEST_SKIP() << "the user's malloc settings are in force";
  const size_t mapped_before = mallinfo2().hblkhd;
  void* block = std::malloc(64u << 20);
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, 64u << 20);
  EXPECT_EQ(mallinfo2().hblkhd, mapped_before);
  const size_t arena = mallinfo2().arena;
  std::free(block);
  EXPECT_EQ(mallinfo2().arena, arena);  // the heap did not shrink
}
#endif

TEST(Allocator, TunablesForAChildAreTheUsersWhenSetElseOurs) {
  const char* previous = std::getenv("GLIBC_TUNABLES");
  const std::string saved = previous ? previous : "";
  unsetenv("GLIBC_TUNABLES");
  EXPECT_EQ(allocator_tunables(), "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4611686018427387904");
  setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1", 1);
  EXPECT_EQ(allocator_tunables(), "glibc.malloc.arena_max=1");
  if (previous) setenv("GLIBC_TUNABLES", saved.c_str(), 1);
  else unsetenv("GLIBC_TUNABLES");
}

}  // namespace
}  // namespace rewardgen
