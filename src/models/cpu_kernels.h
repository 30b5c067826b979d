#pragma once
// The instruction-set copies of our CPU kernels (attention_kernels.h, geglu_kernels.h): each
// kernel family's .inc is compiled once portable and, on x86-64 GCC/Clang, once with AVX2 + FMA and
// once with AVX-512 (cpu_kernels_avx2.cpp, cpu_kernels_avx512.cpp); the best copy this CPU runs is
// chosen at run time.
#include <vector>

namespace rewardgen::cpu_kernels {

enum class Isa { generic, avx2, avx512 };
Isa best_isa();                    // the fastest this CPU runs
std::vector<Isa> runnable_isas();  // every copy this build has and this CPU runs (tests compare them)
const char* name(Isa isa);         // "generic", "avx2+fma", "avx512"

// The name of best_isa(), as `rewardgen --version` prints it.
const char* instruction_set();

}  // namespace rewardgen::cpu_kernels
