// The CPU kernels (attention, GEGLU) for CPUs with AVX2 and FMA: CMake compiles this file alone
// with -mavx2 -mfma and defines REWARDGEN_KERNELS_X86 on x86-64 GCC/Clang; attention_kernels.cpp
// and geglu_kernels.cpp call these copies when the CPU reports both.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "models/attention_kernels.h"
#include "models/geglu_kernels.h"

#if defined(REWARDGEN_KERNELS_X86)
namespace rewardgen::attention_kernels::avx2 {
#include "models/attention_kernels.inc"
}  // namespace rewardgen::attention_kernels::avx2
namespace rewardgen::geglu_kernels::avx2 {
#include "models/geglu_kernels.inc"
}  // namespace rewardgen::geglu_kernels::avx2
#endif
