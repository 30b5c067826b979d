#include "models/attention_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

namespace rewardgen::attention_kernels {
namespace {

using cpu_kernels::name;
using cpu_kernels::runnable_isas;

// One head, rows `stride` floats apart (wider than d, as a head inside [B, L, h·d] is).
struct Head {
  int64_t L, S, d, stride;
  std::vector<float> q, k, v, d_out;
};

Head random_head(int64_t L, int64_t S, int64_t d, uint32_t seed) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Head h{L, S, d, d + 3, {}, {}, {}, {}};
  for (auto* x : {&h.q, &h.d_out}) x->resize(L * h.stride);
  for (auto* x : {&h.k, &h.v}) x->resize(S * h.stride);
  for (auto* x : {&h.q, &h.k, &h.v, &h.d_out})
    for (float& e : *x) e = normal(generator);
  return h;
}

// The definition in double: out = softmax(scale·q kᵀ) v and its gradients for the loss Σ d_out·out
// (dS = P ∘ (dP − Δ) with Δ_i = Σ_j P_ij dP_ij), written out by hand, row by row.
struct Expected {
  std::vector<double> out, lse, dq, dk, dv;  // [L][d], [L], [L][d], [S][d], [S][d]
};
Expected definition(const Head& h, double scale) {
  const int64_t L = h.L, S = h.S, d = h.d, st = h.stride;
  Expected e{std::vector<double>(L * d), std::vector<double>(L), std::vector<double>(L * d), std::vector<double>(S * d, 0.0),
             std::vector<double>(S * d, 0.0)};
  for (int64_t i = 0; i < L; ++i) {
    std::vector<double> p(S), dp(S);
    double max = -1e300, sum = 0.0, delta = 0.0;
    for (int64_t j = 0; j < S; ++j) {
      double s = 0.0;
      for (int64_t c = 0; c < d; ++c) s += double(h.q[i * st + c]) * h.k[j * st + c];
      p[j] = s * scale;
      max = std::max(max, p[j]);
    }
    for (double& x : p) sum += (x = std::exp(x - max));
    for (double& x : p) x /= sum;
    e.lse[i] = max + std::log(sum);
    for (int64_t j = 0; j < S; ++j) {
      for (int64_t c = 0; c < d; ++c) {
        e.out[i * d + c] += p[j] * h.v[j * st + c];
        dp[j] += double(h.d_out[i * st + c]) * h.v[j * st + c];
      }
      delta += p[j] * dp[j];
    }
    for (int64_t j = 0; j < S; ++j) {
      const double ds = p[j] * (dp[j] - delta);
      for (int64_t c = 0; c < d; ++c) {
        e.dq[i * d + c] += ds * h.k[j * st + c] * scale;
        e.dk[j * d + c] += ds * h.q[i * st + c] * scale;
        e.dv[j * d + c] += p[j] * h.d_out[i * st + c];
      }
    }
  }
  return e;
}

double max_difference(const std::vector<float>& got, int64_t stride, const std::vector<double>& want, int64_t d) {
  double worst = 0.0;
  for (size_t r = 0; r < want.size() / d; ++r)
    for (int64_t c = 0; c < d; ++c) worst = std::max(worst, std::abs(got[r * stride + c] - want[r * d + c]));
  return worst;
}

TEST(AttentionKernels, EveryCopyComputesTheDefinitionAndItsGradients) {
  // Each instruction set's copy (the portable one included, which the CPU dispatch skips here) on
  // shapes that exercise padding (widths 1, 3, 40 against vectors of 8 or 16), one query row, the
  // row blocks' tails, and the key tiles of the forward (300 and 600 keys > 256).
  const std::vector<Isa> isas = runnable_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::generic);
  for (const auto& [L, S, d] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {5, 7, 3}, {37, 9, 8}, {256, 256, 8}, {33, 77, 40}, {13, 300, 16}, {70, 600, 8}}) {
    const Head h = random_head(L, S, d, static_cast<uint32_t>(L * 1000 + S * 10 + d));
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    const Expected e = definition(h, scale);
    for (Isa isa : isas) {
      const int64_t st = h.stride;
      std::vector<float> out(L * st), lse(L), dq(L * st), dk(S * st), dv(S * st);
      Workspace w;
      const HeadShape shape{L, S, d, static_cast<float>(scale)};
      // The forward in two row ranges (as the threads split a head), then the backward.
      forward(shape, {h.q.data(), st}, {h.k.data(), st}, {h.v.data(), st}, 0, L / 2, {out.data(), st}, lse.data(), w, isa);
      forward(shape, {h.q.data(), st}, {h.k.data(), st}, {h.v.data(), st}, L / 2, L, {out.data(), st}, lse.data(), w, isa);
      backward(shape, {h.q.data(), st}, {h.k.data(), st}, {h.v.data(), st}, {out.data(), st}, {h.d_out.data(), st},
               lse.data(), {dq.data(), st}, {dk.data(), st}, {dv.data(), st}, w, isa);
      const std::string where = std::string(name(isa)) + " L " + std::to_string(L) + " S " + std::to_string(S) + " d " + std::to_string(d);
      EXPECT_LT(max_difference(out, st, e.out, d), 2e-6) << where;
      EXPECT_LT(max_difference(lse, 1, e.lse, 1), 2e-6) << where;
      EXPECT_LT(max_difference(dq, st, e.dq, d), 5e-6) << where;
      EXPECT_LT(max_difference(dk, st, e.dk, d), 5e-6) << where;
      EXPECT_LT(max_difference(dv, st, e.dv, d), 5e-6) << where;
    }
  }
}

TEST(AttentionKernels, SoftmaxOfLargeScoresStaysFinite) {
  // Scores of ±1000 (the max subtracted before exp, exp clamped below): out is the value of the
  // key with the largest score, no NaN or Inf.
  for (Isa isa : runnable_isas()) {
    const int64_t L = 1, S = 20, d = 1;
    std::vector<float> q{1000.0f}, k(S), v(S), out(1), lse(1);
    for (int64_t j = 0; j < S; ++j) k[j] = (j == 13 ? 1.0f : -1.0f) * (1.0f + 0.01f * j), v[j] = static_cast<float>(j);
    Workspace w;
    forward({L, S, d, 1.0f}, {q.data(), 1}, {k.data(), 1}, {v.data(), 1}, 0, 1, {out.data(), 1}, lse.data(), w, isa);
    EXPECT_FLOAT_EQ(out[0], 13.0f) << name(isa);
    EXPECT_NEAR(lse[0], 1000.0f * 1.13f, 1e-2) << name(isa);
  }
}

}  // namespace
}  // namespace rewardgen::attention_kernels
