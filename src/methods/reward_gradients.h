#pragma once
// Reward gradients as R0 uses them (docs/r0.md): each reward's gradient with respect to the
// generated image, per sample, optionally normalised to unit length before the weighted sum, and
// the teacher's classifier-free-guidance direction as one more (implicit) reward on the latent.
// The trained network then receives them through the surrogate loss −⟨sg(g), x⟩, whose gradient
// in x is −g: the same update as backprop through the reward when g is the raw gradient.
// Letters: B batch, H×W pixels, C×h×w latent.
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rewards/reward.h"
#include "sampling/rollout.h"
#include "schedulers/noise_schedule.h"

namespace rewardgen {

struct WeightedReward {
  std::shared_ptr<Reward> reward;
  double weight = 1.0;
  std::string label;  // as the config names it: the key of its scores and norms (empty: reward->name())
  std::string key() const { return label.empty() ? reward->name() : label; }
};

struct RewardDirection {
  at::Tensor direction;                       // Σ wᵢ ĝᵢ (or Σ wᵢ gᵢ), [B, 3, H, W], no graph
  std::map<std::string, at::Tensor> scores;   // rᵢ per sample [B], by WeightedReward::key()
  std::map<std::string, at::Tensor> norms;    // ‖gᵢ‖ per sample [B] before normalisation (lookahead: of the displacement)
  std::map<std::string, at::Tensor> gains;    // lookahead only: rᵢ(x*) − rᵢ(x) per sample [B]
};

// How each reward's gradient is scaled before the weighted sum.
enum class GradientNormalization {
  none,        // the raw gᵢ: the reward with the largest gradients dominates
  per_sample,  // ĝᵢ = gᵢ / (‖gᵢ‖ + eps) per sample: every sample pushes with unit strength per reward
  per_batch,   // ĝᵢ = gᵢ / (mean over the batch of ‖gᵢ‖ + eps): each reward still gets the same
               // budget, but a sample whose reward is saturated (tiny gradient) keeps its tiny share
};

// ĝ = g / (‖g‖ + eps) per sample (norm over all non-batch dims).
at::Tensor normalize_per_sample(const at::Tensor& g, double eps);
// ĝ = g / (mean_b ‖g_b‖ + eps): the mean per-sample norm becomes 1, the ratios between samples stay.
at::Tensor normalize_per_batch(const at::Tensor& g, double eps);
at::Tensor normalize_gradient(const at::Tensor& g, GradientNormalization mode, double eps);

// Looking ahead along a reward: in place of its gradient at x, the displacement x* − x to where
// `steps` Adam steps of the reward on the pixels themselves (projected to [-1, 1]) take x. Adam moves
// every pixel by about `lr` a step whatever its gradient's size, so the displacement paints whole
// regions (a missing object, a recoloured one) where the gradient at x sits on a few edge pixels
// (docs/r0.md, "Looking ahead"). steps = 0: the plain gradient.
struct PixelLookahead {
  int64_t steps = 0;
  double lr = 0.02;
  // > 0: each sample's (normalised) displacement is scaled by min(1, gain / gain_scale), gain =
  // r(x*) − r(x) ≥ 0 in the reward's units. Adam steps a pixel by about lr even where the gradient is
  // vanishingly small, so an image the reward already scores at its ceiling would otherwise get a full
  // unit push toward a pixel-level sharpening of the reward; scaled, only what the lookahead improves
  // pushes. 0: off.
  double gain_scale = 0;
};

// For every reward: gᵢ = ∂rᵢ/∂x at x = images (detached and clamped to [-1, 1], so a reward always
// judges a valid image), or with `lookahead` its displacement, then normalised as `mode` says,
// weighted, summed. Needs differentiable rewards.
RewardDirection reward_direction(const std::vector<WeightedReward>& rewards, const at::Tensor& images,
                                 const std::vector<std::string>& prompts, GradientNormalization mode, double eps,
                                 const PixelLookahead& lookahead = {});

// The classifier-free guidance direction as an implicit reward (docs/r0.md): x̂₀ [B, C, h, w] is
// noised to x_t at t ~ U[t_min, t_max] per sample, and ∇ log p(c | x_t) ∝ −(ε(x_t, t, c) − ε(x_t, t, ∅))
// from the frozen teacher points where the guided model would move x. Returned per sample
// normalised (or raw, divided by √(1−ᾱ_t)), [B, C, h, w], no graph. Data-parallel: x̂₀ is `shard`'s
// rows; t and the noise are drawn for the global batch and sliced.
at::Tensor cfg_direction(const UNet2DConditionModel& teacher, const NoiseSchedule& schedule, const Conditioning& conditioning,
                         const at::Tensor& x0, int64_t t_min, int64_t t_max, bool normalize, double eps,
                         at::Generator& generator, const BatchShard& shard = {});

// −⟨sg(direction), x⟩ averaged over the batch: the loss whose gradient in x is −direction / B.
at::Tensor surrogate_loss(const at::Tensor& direction, const at::Tensor& x);

}  // namespace rewardgen
