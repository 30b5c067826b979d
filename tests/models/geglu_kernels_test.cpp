#include "models/geglu_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace rewardgen::geglu_kernels {
namespace {

using cpu_kernels::name;
using cpu_kernels::runnable_isas;

// The definition in double, by hand: out = a·g·Φ(g), da = d·g·Φ(g), dg = d·a·(Φ(g) + g·φ(g)).
double cdf(double g) { return 0.5 * std::erfc(-g / std::sqrt(2.0)); }
double density(double g) { return std::exp(-0.5 * g * g) / std::sqrt(2.0 * M_PI); }

TEST(GegluKernels, EveryCopyComputesTheDefinitionAndItsGradient) {
  // Widths with and without a tail against vectors of 8 and 16 (1, 7, 16, 17, 40), gates from the
  // far negative side (Φ tiny: no cancellation allowed) to the far positive (Φ = 1).
  std::mt19937 generator(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int64_t F : {1, 7, 16, 17, 40}) {
    const int64_t rows = 5;
    std::vector<float> h(rows * 2 * F), d_out(rows * F);
    for (float& x : h) x = normal(generator);
    for (float& x : d_out) x = normal(generator);
    h[F] = -12.0f, h[2 * F - 1] = 30.0f;  // row 0's first and last gate
    for (cpu_kernels::Isa isa : runnable_isas()) {
      std::vector<float> out(rows * F), d_h(rows * 2 * F);
      forward(h.data(), rows, F, out.data(), isa);
      backward(h.data(), d_out.data(), rows, F, d_h.data(), isa);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < F; ++j) {
          const double a = h[r * 2 * F + j], g = h[r * 2 * F + F + j], d = d_out[r * F + j];
          const std::string where = std::string(name(isa)) + " F " + std::to_string(F) + " row " + std::to_string(r) +
                                    " column " + std::to_string(j) + " g " + std::to_string(g);
          // Relative to the terms' size, with an absolute floor for the values near 0.
          const double expected = a * g * cdf(g), da = d * g * cdf(g), dg = d * a * (cdf(g) + g * density(g));
          EXPECT_NEAR(out[r * F + j], expected, 1e-6 * (std::abs(a * g) + 1e-30) + 1e-30) << where;
          EXPECT_NEAR(d_h[r * 2 * F + j], da, 1e-6 * std::abs(d * g) + 1e-30) << where;
          EXPECT_NEAR(d_h[r * 2 * F + F + j], dg, 1e-6 * std::abs(d * a) * (1.0 + std::abs(g)) + 1e-30) << where;
        }
    }
  }
}

TEST(GegluKernels, HandComputedPoints) {
  // GELU(0) = 0 and GELU'(0) = Φ(0) = ½; GELU(g) = g for large g (Φ = 1, φ = 0), 0 for very negative g.
  for (cpu_kernels::Isa isa : runnable_isas()) {
    const std::vector<float> h{3.0f, 2.0f, 5.0f, 0.0f, 20.0f, -40.0f}, d_out{1.0f, 2.0f, 4.0f};
    std::vector<float> out(3), d_h(6);
    forward(h.data(), 1, 3, out.data(), isa);
    backward(h.data(), d_out.data(), 1, 3, d_h.data(), isa);
    EXPECT_EQ(out[0], 0.0f) << name(isa);
    EXPECT_FLOAT_EQ(out[1], 2.0f * 20.0f) << name(isa);
    EXPECT_NEAR(out[2], 0.0f, 1e-30) << name(isa);
    EXPECT_EQ(d_h[0], 0.0f) << name(isa);                 // d·g·Φ(g) at g = 0
    EXPECT_FLOAT_EQ(d_h[3], 1.0f * 3.0f * 0.5f) << name(isa);  // d·a·GELU'(0)
    EXPECT_FLOAT_EQ(d_h[4], 2.0f * 2.0f) << name(isa);    // d·a·1 at g = 20
    EXPECT_FLOAT_EQ(d_h[1], 2.0f * 20.0f) << name(isa);   // d·g at g = 20
  }
}

TEST(GegluKernels, Bf16RowsKeepNaNAndExactValues) {
  // bf16 bits: 1.0 = 0x3F80, 2.0 = 0x4000, 30.0 = 0x41F0 (Φ(30) = 1, so out = a·g exactly: 60 =
  // 0x4270), NaN = 0x7FC0; a NaN gate gives a NaN, not a number.
  for (cpu_kernels::Isa isa : runnable_isas()) {
    const std::vector<std::uint16_t> h{0x4000, 0x3F80, 0x41F0, 0x7FC0};  // a = [2, 1], g = [30, NaN]
    std::vector<std::uint16_t> out(2);
    forward_bf16(h.data(), 1, 2, out.data(), isa);
    EXPECT_EQ(out[0], 0x4270) << name(isa);
    EXPECT_EQ(out[1] & 0x7F80, 0x7F80) << name(isa);  // exponent all ones
    EXPECT_NE(out[1] & 0x007F, 0) << name(isa);       // with a mantissa: NaN
  }
}

}  // namespace
}  // namespace rewardgen::geglu_kernels
