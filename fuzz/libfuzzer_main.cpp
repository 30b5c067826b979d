// libFuzzer's entry point for one target, chosen at compile time (fuzz/CMakeLists.txt builds one
// executable per target with -DREWARDGEN_FUZZ_TARGET=<function>).
#include <cstddef>
#include <cstdint>

#include "harnesses.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rewardgen::fuzz::REWARDGEN_FUZZ_TARGET(data, size);
  return 0;
}
