#include "core/blas.h"

#include <dlfcn.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "core/error.h"
#include "core/log.h"

namespace rewardgen {

namespace {

// Set in the re-executed process: the core OpenBLAS had chosen by itself before.
constexpr const char* kBlasReexecMarker = "REWARDGEN_BLAS_REEXEC_FROM";

template <typename Fn>
Fn openblas_symbol(const char* name) {
  // LibTorch links libblas.so.3 into the global namespace; RTLD_DEFAULT finds its symbols.
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

#if defined(__x86_64__) || defined(__i386__)
// Whether the OS saves the AMX tile state (XCR0 bits 17, 18: XTILECFG and XTILEDATA), read with
// XGETBV once CPUID says the OS enabled it (CPUID.1:ECX[27], OSXSAVE).
bool os_saves_amx_tiles() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || !(ecx >> 27 & 1)) return false;
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  return (xcr0_low >> 17 & 3) == 3;
}
#endif

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  // GCC's cpu model data checks CPUID and, for AVX/AVX-512, that the OS saves the registers (XGETBV).
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  // The BF16 features from CPUID itself: clang 14's __builtin_cpu_supports knows neither name.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool leaf7 = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) != 0;
  const bool amx_bf16_cpu = leaf7 && (edx >> 22 & 1);  // CPUID.(7, 0):EDX[22]
  const bool avx512_bf16_cpu = leaf7 && eax >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax >> 5 & 1);
  f.avx512_bf16 = f.avx512f && avx512_bf16_cpu;  // avx512f already includes the OS's AVX-512 state
  f.amx_bf16 = amx_bf16_cpu && os_saves_amx_tiles();
#endif
  return f;
}

std::string best_openblas_core(const CpuFeatures& f) {
  if (f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl) return "SkylakeX";
  if (f.avx2 && f.fma) return "Haswell";
  return "";
}

bool is_generic_openblas_core(const std::string& core) {
  // OpenBLAS's x86-64 kernels below Haswell (its names, any case): no AVX2 or AVX-512 GEMM.
  static const std::array<const char*, 14> generic = {"prescott", "katmai",   "coppermine", "northwood", "banias",
                                                      "core2",    "penryn",   "dunnington", "nehalem",   "atom",
                                                      "opteron",  "barcelona", "bobcat",    "sandybridge"};
  std::string lower = core;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(generic.begin(), generic.end(), lower) != generic.end();
}

std::string openblas_core_override(const std::string& loaded_core, const CpuFeatures& features,
                                   bool coretype_set_by_user) {
  if (coretype_set_by_user || !is_generic_openblas_core(loaded_core)) return "";
  return best_openblas_core(features);
}

BlasInfo blas_info() {
  BlasInfo info;
  using GetString = char* (*)();
  const auto config = openblas_symbol<GetString>("openblas_get_config");
  const auto corename = openblas_symbol<GetString>("openblas_get_corename");
  if (config) info.library = config();
  if (corename) info.core = corename();
  if (info.library.empty()) info.library = corename ? "OpenBLAS" : "not OpenBLAS (no openblas_get_config)";
  // OpenBLAS ends its config string with the core's name already; keep only the library part.
  if (!info.core.empty()) {
    const std::string suffix = " " + info.core;
    if (info.library.size() > suffix.size() &&
        info.library.compare(info.library.size() - suffix.size(), suffix.size(), suffix) == 0)
      info.library.erase(info.library.size() - suffix.size());
  }
  return info;
}

std::string to_string(const BlasInfo& info) {
  return info.core.empty() ? info.library : str(info.library, " (core ", info.core, ")");
}

void choose_blas_core(char** argv) {
  if (std::getenv(kBlasReexecMarker)) return;  // already re-executed once: never loop
  BlasInfo info = blas_info();
  // For the end-to-end test of this path on machines whose OpenBLAS knows the CPU: pretend it did not.
  if (const char* pretend = std::getenv("REWARDGEN_TEST_BLAS_CORE")) info.core = pretend;
  if (info.core.empty()) return;
  const std::string core = openblas_core_override(info.core, detect_cpu_features(), std::getenv("OPENBLAS_CORETYPE") != nullptr);
  if (core.empty()) return;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  setenv(kBlasReexecMarker, info.core.c_str(), 1);
  std::cerr.flush();
  execv("/proc/self/exe", argv);
  // Only reached when exec failed: go on with the slow kernel, and say so.
  const int error = errno;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kBlasReexecMarker);
  std::cerr << "warning: could not re-execute with OPENBLAS_CORETYPE=" << core << " (" << std::strerror(error)
            << "); GEMMs run on OpenBLAS's generic " << info.core << " kernel\n";
}

void report_blas_core_choice(const Logger& log) {
  const char* from = std::getenv(kBlasReexecMarker);
  if (!from) return;
  const char* to = std::getenv("OPENBLAS_CORETYPE");
  log.info(str("OpenBLAS chose its generic ", from, " kernel for this CPU; re-executed with OPENBLAS_CORETYPE=",
               to ? to : "?", " (now ", blas_info().core, "). Set OPENBLAS_CORETYPE yourself to choose another."));
  // Child processes (a launcher's workers) inherit OPENBLAS_CORETYPE; they need not say it again.
  unsetenv(kBlasReexecMarker);
}

}  // namespace rewardgen
