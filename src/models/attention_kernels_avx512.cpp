// The fused attention kernels for CPUs with AVX-512 F: vectors of 16 floats (CMake compiles this
// file alone with -mavx512f -mfma and defines REWARDGEN_ATTENTION_X86 on x86-64 GCC/Clang);
// attention_kernels.cpp calls them when the CPU reports AVX-512 F. On the 2-core Zen 5 machine of
// docs/performance.md they run the world UNet's attention about 2x as fast as the AVX2 copy.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "models/attention_kernels.h"

#if defined(REWARDGEN_ATTENTION_X86)
namespace rewardgen::attention_kernels::avx512 {
#define RG_LANES 16
#include "models/attention_kernels.inc"
#undef RG_LANES
}  // namespace rewardgen::attention_kernels::avx512
#endif
