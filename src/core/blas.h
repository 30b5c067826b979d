#pragma once
// Which OpenBLAS kernel serves LibTorch's fp32 GEMMs, and choosing a better one at start-up.
// OpenBLAS picks its kernel ("core") once, when the library loads, from the CPU's family and model.
// Debian's 0.3.21 does not know the newest Xeons (family 6, model 207) and falls back to its generic
// Prescott kernel: 5x slower GEMMs than the SkylakeX kernel the CPU can run. The only way to change
// the kernel is the OPENBLAS_CORETYPE variable *before* the library loads, so the process re-executes
// itself once with it set (never overriding a value the user set).
#include <string>

namespace rewardgen {

class Logger;

// The instruction-set features that decide between OpenBLAS's x86-64 kernels.
struct CpuFeatures {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false, amx_bf16 = false;  // bf16 dot products (models/precision.h), not BLAS kernels
};
CpuFeatures detect_cpu_features();  // this CPU (and OS support for its registers)

// The best kernel the features allow: AVX-512 F/BW/DQ/VL -> "SkylakeX"; AVX2 + FMA -> "Haswell";
// else "" (nothing better than what OpenBLAS chose by itself).
std::string best_openblas_core(const CpuFeatures& features);
// True for OpenBLAS's kernels that use neither AVX2 nor AVX-512 (Prescott, Core2, Nehalem, ...),
// the fall-backs it takes on a CPU it does not recognise.
bool is_generic_openblas_core(const std::string& core);
// The OPENBLAS_CORETYPE to re-execute with, or "" for none: only when the variable is unset, the
// loaded core is generic and the CPU can run a better one.
std::string openblas_core_override(const std::string& loaded_core, const CpuFeatures& features,
                                   bool coretype_set_by_user);

struct BlasInfo {
  std::string library;  // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY ...", or what LibTorch's BLAS is
  std::string core;     // "SkylakeX"; "" when the BLAS is not OpenBLAS
};
BlasInfo blas_info();  // reads openblas_get_config / openblas_get_corename from the loaded library
std::string to_string(const BlasInfo& info);  // "OpenBLAS 0.3.21 ... (core SkylakeX)"

// Call first thing in main(): re-executes the process with OPENBLAS_CORETYPE set when
// openblas_core_override says so, and returns only when no re-execution happened (or it failed).
// REWARDGEN_TEST_BLAS_CORE=NAME makes it take NAME for the loaded core (tests of this path).
// The re-executed process reports what was done through report_blas_core_choice.
void choose_blas_core(char** argv);
// Logs (info) the re-execution that choose_blas_core did for this process, if any.
void report_blas_core_choice(const Logger& log);

}  // namespace rewardgen
