// The CPU kernels (attention, GEGLU) for CPUs with AVX-512 F, vectors of 16 floats: CMake compiles
// this file alone with -mavx512f -mfma and defines REWARDGEN_KERNELS_X86 on x86-64 GCC/Clang;
// attention_kernels.cpp and geglu_kernels.cpp call these copies when the CPU reports AVX-512 F. On
// the 2-core Zen 5 machine of docs/performance.md they run the world UNet's attention about 2x as
// fast as the AVX2 copy.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "models/attention_kernels.h"
#include "models/geglu_kernels.h"

#if defined(REWARDGEN_KERNELS_X86)
#define RG_LANES 16
namespace rewardgen::attention_kernels::avx512 {
#include "models/attention_kernels.inc"
}  // namespace rewardgen::attention_kernels::avx512
namespace rewardgen::geglu_kernels::avx512 {
#include "models/geglu_kernels.inc"
}  // namespace rewardgen::geglu_kernels::avx512
#undef RG_LANES
#endif
