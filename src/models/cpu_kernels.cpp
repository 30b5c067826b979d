#include "models/cpu_kernels.h"

namespace rewardgen::cpu_kernels {

Isa best_isa() {
#if defined(REWARDGEN_KERNELS_X86)
  static const Isa isa = __builtin_cpu_supports("avx512f")                                   ? Isa::avx512
                         : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? Isa::avx2
                                                                                            : Isa::generic;
  return isa;
#else
  return Isa::generic;
#endif
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> isas{Isa::generic};
  if (best_isa() == Isa::avx2 || best_isa() == Isa::avx512) isas.push_back(Isa::avx2);
  if (best_isa() == Isa::avx512) isas.push_back(Isa::avx512);
  return isas;
}

const char* name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2+fma";
    default: return "generic";
  }
}

const char* instruction_set() { return name(best_isa()); }

}  // namespace rewardgen::cpu_kernels
