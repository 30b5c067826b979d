#include "schedulers/denoising_loss.h"

#include <gtest/gtest.h>

namespace rewardgen {
namespace {

TEST(DenoisingLoss, MinSnrWeightsByHand) {
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor like = at::zeros({2, 4, 2, 2}, at::kDouble);
  const at::Tensor ab = s.alpha_bar(at::tensor({10, 900}), like);
  const double a10 = s.alpha_bar(10), a900 = s.alpha_bar(900);
  const double snr10 = a10 / (1 - a10), snr900 = a900 / (1 - a900);  // ≈ 100 and ≈ 0.01
  ASSERT_GT(snr10, 5.0);
  ASSERT_LT(snr900, 5.0);
  // ε: min(SNR, 5)/SNR -> 5/SNR at t = 10, 1 at t = 900.
  const at::Tensor eps_w = min_snr_weight(PredictionType::epsilon, ab, 5.0);
  EXPECT_NEAR(eps_w[0].item<double>(), 5.0 / snr10, 1e-12);
  EXPECT_NEAR(eps_w[1].item<double>(), 1.0, 1e-12);
  // v: min(SNR, 5)/(SNR + 1); x₀: min(SNR, 5).
  const at::Tensor v_w = min_snr_weight(PredictionType::v_prediction, ab, 5.0);
  EXPECT_NEAR(v_w[0].item<double>(), 5.0 / (snr10 + 1), 1e-12);
  EXPECT_NEAR(v_w[1].item<double>(), snr900 / (snr900 + 1), 1e-12);
  EXPECT_NEAR(min_snr_weight(PredictionType::sample, ab, 5.0)[1].item<double>(), snr900, 1e-12);
  EXPECT_TRUE(at::equal(min_snr_weight(PredictionType::epsilon, ab, 0.0), at::ones({2}, at::kDouble)));
}

TEST(DenoisingLoss, ZeroForTheExactPredictionAndTheWeightedMseOtherwise) {
  at::manual_seed(0);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x0 = at::randn({2, 4, 2, 2}, at::kDouble), noise = at::randn({2, 4, 2, 2}, at::kDouble);
  const at::Tensor ab = s.alpha_bar(at::tensor({10, 900}), x0);
  for (PredictionType type : {PredictionType::epsilon, PredictionType::v_prediction, PredictionType::sample}) {
    const at::Tensor exact = model_output_for(type, x0, noise, ab);
    EXPECT_NEAR(denoising_loss(type, exact, x0, noise, ab, 5.0).loss.item<double>(), 0.0, 1e-20);
    // Off by 1 everywhere: per-sample MSE 1, the loss is the mean of the weights.
    const DenoisingLoss off = denoising_loss(type, exact + 1, x0, noise, ab, 5.0);
    EXPECT_TRUE(at::allclose(off.per_sample, at::ones({2}, at::kDouble)));
    EXPECT_NEAR(off.loss.item<double>(), min_snr_weight(type, ab, 5.0).mean().item<double>(), 1e-12);
  }
}

}  // namespace
}  // namespace rewardgen
