// The fused attention kernels for CPUs with AVX2 and FMA (CMake compiles this file alone with
// -mavx2 -mfma and defines REWARDGEN_ATTENTION_X86 on x86-64 GCC/Clang); attention_kernels.cpp
// calls them when the CPU reports both.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "models/attention_kernels.h"

#if defined(REWARDGEN_ATTENTION_X86)
namespace rewardgen::attention_kernels::avx2 {
#include "models/attention_kernels.inc"
}  // namespace rewardgen::attention_kernels::avx2
#endif
