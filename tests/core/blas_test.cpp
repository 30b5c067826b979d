#include "core/blas.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>

namespace rewardgen {
namespace {

CpuFeatures avx512() { return {true, true, true, true, true, true}; }

TEST(BlasCore, BestKernelFromFeatures) {
  EXPECT_EQ(best_openblas_core(avx512()), "SkylakeX");
  CpuFeatures no_vl = avx512();
  no_vl.avx512vl = false;  // AVX-512 F/BW/DQ without VL: SkylakeX's kernels need all four
  EXPECT_EQ(best_openblas_core(no_vl), "Haswell");
  EXPECT_EQ(best_openblas_core({true, true}), "Haswell");
  EXPECT_EQ(best_openblas_core({true, false}), "");   // AVX2 without FMA
  EXPECT_EQ(best_openblas_core({false, true}), "");   // FMA without AVX2
  EXPECT_EQ(best_openblas_core({}), "");
}

TEST(BlasCore, GenericKernels) {
  EXPECT_TRUE(is_generic_openblas_core("Prescott"));
  EXPECT_TRUE(is_generic_openblas_core("PRESCOTT"));
  EXPECT_TRUE(is_generic_openblas_core("Nehalem"));
  EXPECT_TRUE(is_generic_openblas_core("Sandybridge"));
  EXPECT_FALSE(is_generic_openblas_core("Haswell"));
  EXPECT_FALSE(is_generic_openblas_core("SkylakeX"));
  EXPECT_FALSE(is_generic_openblas_core("Zen"));
  EXPECT_FALSE(is_generic_openblas_core("Cooperlake"));
}

TEST(BlasCore, OverrideOnlyWhenGenericAndUnset) {
  // The case: model 207 Xeon, Debian's OpenBLAS falls back to Prescott.
  EXPECT_EQ(openblas_core_override("Prescott", avx512(), false), "SkylakeX");
  EXPECT_EQ(openblas_core_override("Prescott", {true, true}, false), "Haswell");
  EXPECT_EQ(openblas_core_override("Prescott", avx512(), true), "");   // the user's value stands
  EXPECT_EQ(openblas_core_override("Haswell", avx512(), false), "");   // not generic: left alone
  EXPECT_EQ(openblas_core_override("Zen", avx512(), false), "");
  EXPECT_EQ(openblas_core_override("Prescott", {}, false), "");        // nothing better to offer
}

// The features read from CPUID agree with the kernel's list of this machine's CPU (Linux x86).
TEST(CpuFeatures, AgreeWithTheKernelsFlags) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line) && line.rfind("flags", 0) != 0) {
  }
  if (line.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  std::istringstream words(line.substr(line.find(':') + 1));
  const std::set<std::string> flags{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
  const CpuFeatures f = detect_cpu_features();
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_bf16") == 1);
}

TEST(BlasCore, InfoNamesTheLoadedLibrary) {
  const BlasInfo info = blas_info();
  EXPECT_FALSE(info.library.empty());
  if (!info.core.empty()) {
    EXPECT_NE(to_string(info).find("(core " + info.core + ")"), std::string::npos);
  }
}

// Whatever kernel is loaded, its fp32 GEMM must equal a naive product where every value is exact:
// small integers whose products and sums stay below 2^24.
TEST(BlasCore, GemmIsExactOnIntegerMatrices) {
  at::manual_seed(0);
  for (const auto& [m, k, n] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {7, 13, 5}, {64, 64, 64}, {129, 257, 65}, {512, 300, 31}}) {
    const at::Tensor a = at::randint(-8, 9, {m, k}).to(at::kFloat);
    const at::Tensor b = at::randint(-8, 9, {k, n}).to(at::kFloat);
    const at::Tensor c = at::mm(a, b);
    const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
    at::Tensor naive = at::zeros({m, n}, at::kDouble);
    const auto A = ad.accessor<double, 2>(), Bm = bd.accessor<double, 2>();
    auto C = naive.accessor<double, 2>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) C[i][j] += A[i][p] * Bm[p][j];
    EXPECT_TRUE(at::equal(c.to(at::kDouble), naive)) << m << "x" << k << "x" << n << " on core " << blas_info().core;
  }
}

}  // namespace
}  // namespace rewardgen
