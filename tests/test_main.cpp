// The test binary's main: the same BLAS kernel choice as the CLI (core/blas.h), then GoogleTest.
#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/blas.h"
#include "core/libstdcxx.h"
#include "core/log.h"

int main(int argc, char** argv) {
  rewardgen::preload_libstdcxx_if_shadowed(argv);
  rewardgen::choose_blas_core(argv);
  rewardgen::tune_allocator();  // large temporaries from the heap, not mmap (core/allocator.h)
  rewardgen::report_blas_core_choice(rewardgen::Logger());
  rewardgen::report_libstdcxx_preload(rewardgen::Logger());
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
