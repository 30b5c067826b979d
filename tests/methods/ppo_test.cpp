#include "methods/ppo.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace rewardgen {
namespace {

// Hand case: prompt "a" has rewards 1, 3 (buffer mean 2, std 1), "b" one reward 10 below
// min_count = 2, so it falls back to the batch (1, 3, 10: mean 14/3, population std √(74/9)).
TEST(PromptStatTracker, NormalisesPerPromptAndFallsBackToTheBatchBelowMinCount) {
  PromptStatTracker tracker(16, 2);
  const at::Tensor a = tracker.advantages({"a", "b", "a"}, at::tensor({1.0, 10.0, 3.0}, at::kDouble));
  EXPECT_NEAR(a[0].item<double>(), (1 - 2) / (1 + 1e-6), 1e-12);
  EXPECT_NEAR(a[2].item<double>(), (3 - 2) / (1 + 1e-6), 1e-12);
  const double mean = 14.0 / 3, std = std::sqrt(((1 - mean) * (1 - mean) + (10 - mean) * (10 - mean) + (3 - mean) * (3 - mean)) / 3);
  EXPECT_NEAR(a[1].item<double>(), (10 - mean) / (std + 1e-6), 1e-12);
  // The current rewards joined the buffers before the statistics: "b" now has 2 and uses its own.
  const at::Tensor b = tracker.advantages({"b"}, at::tensor({12.0}, at::kDouble));
  EXPECT_NEAR(b[0].item<double>(), (12 - 11) / (1 + 1e-6), 1e-12);
  EXPECT_EQ(tracker.count("b"), 2);
}

TEST(PromptStatTracker, KeepsTheLastBufferSizeRewardsAndResumesExactly) {
  PromptStatTracker tracker(2, 1);
  tracker.advantages({"p", "p", "p"}, at::tensor({100.0, 1.0, 3.0}, at::kDouble));  // keeps 1, 3
  EXPECT_EQ(tracker.count("p"), 2);
  TensorMap state;
  tracker.save_state(state, "ppo/stats/");
  PromptStatTracker restored(2, 1);
  restored.load_state(state, "ppo/stats/");
  // Next reward 5: the buffer becomes 3, 5 (mean 4, std 1) in both.
  const at::Tensor x = tracker.advantages({"p"}, at::tensor({5.0}, at::kDouble));
  const at::Tensor y = restored.advantages({"p"}, at::tensor({5.0}, at::kDouble));
  EXPECT_NEAR(x[0].item<double>(), 1 / (1 + 1e-6), 1e-12);
  EXPECT_TRUE(at::equal(x, y));
  EXPECT_TRUE(testing::throws_error_containing([&] { tracker.advantages({"p"}, at::tensor({NAN}, at::kDouble)); }, "non-finite"));
  EXPECT_TRUE(testing::throws_error_containing([&] { tracker.advantages({"p", "q"}, at::tensor({1.0}, at::kDouble)); }, "one reward per prompt"));
}

// On the first inner step π_θ = π_old: ρ = 1, nothing clipped, and the gradient is the policy
// gradient −mean(A ∇ log π).
TEST(PpoClippedLoss, FirstStepHasRatioOneAndThePolicyGradient) {
  const at::Tensor lp = at::tensor({-1.0, -2.0, -0.5}, at::kDouble).requires_grad_();
  const at::Tensor adv = at::tensor({1.0, -2.0, 20.0}, at::kDouble);
  const PpoLoss l = ppo_clipped_loss(lp, lp.detach(), adv, 1e-4, 5.0);
  EXPECT_EQ(l.clip_fraction, 0.0);
  EXPECT_EQ(l.approx_kl, 0.0);
  EXPECT_NEAR(l.loss.item<double>(), -(1.0 - 2.0 + 5.0) / 3, 1e-12);  // A clipped to ±5
  l.loss.backward();
  EXPECT_TRUE(at::allclose(lp.grad(), -at::tensor({1.0, -2.0, 5.0}, at::kDouble) / 3));
}

// Beyond the clip range in the advantage's direction the sample gives no gradient; against it, it does.
TEST(PpoClippedLoss, ClipsTheRatioOnTheSideTheAdvantagePushes) {
  const at::Tensor old = at::tensor({0.0, 0.0}, at::kDouble);
  const at::Tensor lp = at::tensor({0.1, 0.1}, at::kDouble).requires_grad_();  // ρ = e^0.1 > 1 + ε
  const PpoLoss l = ppo_clipped_loss(lp, old, at::tensor({1.0, -1.0}, at::kDouble), 0.01, 10.0);
  EXPECT_EQ(l.clip_fraction, 1.0);
  EXPECT_NEAR(l.approx_kl, 0.5 * 0.01, 1e-12);
  l.loss.backward();
  EXPECT_EQ(lp.grad()[0].item<double>(), 0.0);                      // A > 0, ρ > 1 + ε: clipped
  EXPECT_NEAR(lp.grad()[1].item<double>(), std::exp(0.1) / 2, 1e-12);  // A < 0: −A ρ is the max, d/dlp = ρ/2
}

}  // namespace
}  // namespace rewardgen
