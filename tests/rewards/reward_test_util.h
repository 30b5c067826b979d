#pragma once
// Checks shared by the reward tests.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "rewards/reward.h"

namespace rewardgen::testing {

// d(Σ scores)/d(pixel) by autograd against central differences at a few pixels, in double.
// The images must be at least [2, 3, 20, 28].
inline void expect_gradient_matches_finite_differences(Reward& reward, const at::Tensor& images,
                                                       const std::vector<std::string>& prompts) {
  ASSERT_TRUE(reward.differentiable());
  at::Tensor x = images.clone().requires_grad_();
  reward.score(x, prompts).sum().backward();
  const at::Tensor grad = x.grad();
  ASSERT_GT(grad.abs().max().item<double>(), 0.0);
  constexpr double h = 1e-5;
  for (auto [b, c, i, j] : std::vector<std::array<int64_t, 4>>{{0, 0, 0, 0}, {0, 1, 7, 13}, {1, 2, 19, 27}, {1, 0, 10, 3}}) {
    at::Tensor plus = images.clone(), minus = images.clone();
    plus[b][c][i][j] += h;
    minus[b][c][i][j] -= h;
    at::NoGradGuard no_grad;
    const double numeric = (reward.score(plus, prompts).sum().item<double>() - reward.score(minus, prompts).sum().item<double>()) / (2 * h);
    const double analytic = grad[b][c][i][j].item<double>();
    EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << reward.name() << " at " << b << c << i << j;
  }
}

}  // namespace rewardgen::testing
