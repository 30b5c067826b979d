#include "methods/reward_gradients.h"

#include <torch/autograd.h>

#include <cmath>

#include "core/device.h"
#include "core/error.h"
#include "core/per_sample.h"
#include "rewards/pixel_ascent.h"

namespace rewardgen {

at::Tensor normalize_per_sample(const at::Tensor& g, double eps) {
  return g / per_sample_factor(g.flatten(1).norm(2, 1) + eps, g);
}

at::Tensor normalize_per_batch(const at::Tensor& g, double eps) {
  return g / (g.flatten(1).norm(2, 1).mean() + eps);
}

at::Tensor normalize_gradient(const at::Tensor& g, GradientNormalization mode, double eps) {
  switch (mode) {
    case GradientNormalization::none: return g;
    case GradientNormalization::per_sample: return normalize_per_sample(g, eps);
    case GradientNormalization::per_batch: return normalize_per_batch(g, eps);
  }
  return g;
}

RewardDirection reward_direction(const std::vector<WeightedReward>& rewards, const at::Tensor& images,
                                 const std::vector<std::string>& prompts, GradientNormalization mode, double eps,
                                 const PixelLookahead& lookahead) {
  if (lookahead.steps < 0 || !(lookahead.lr > 0) || !std::isfinite(lookahead.lr))
    throw Error(str("reward lookahead: steps must be >= 0 and lr finite > 0, got ", lookahead.steps, " and ", lookahead.lr));
  if (!(lookahead.gain_scale >= 0) || !std::isfinite(lookahead.gain_scale))
    throw Error(str("reward lookahead: gain_scale must be finite and >= 0, got ", lookahead.gain_scale));
  RewardDirection out;
  out.direction = at::zeros_like(images.detach());
  for (const WeightedReward& wr : rewards) {
    if (!wr.reward->differentiable()) throw Error(str("reward '", wr.reward->name(), "' is not differentiable"));
    const at::Tensor x = images.detach().clamp(-1, 1).requires_grad_(true);
    at::Tensor scores, g, gain_weight;
    if (lookahead.steps > 0) {
      at::NoGradGuard no_grad;
      scores = wr.reward->score(x, prompts);
      const at::Tensor target = ascend_pixels(*wr.reward, x, prompts, lookahead.steps, lookahead.lr, x.size(0));
      g = target - x.detach();
      if (lookahead.gain_scale > 0) {
        const at::Tensor gain = wr.reward->score(target, prompts).to(scores.dtype()) - scores;
        out.gains[wr.key()] = gain;
        gain_weight = (gain / lookahead.gain_scale).clamp(0, 1);
      }
    } else {
      at::AutoGradMode enable(true);
      scores = wr.reward->score(x, prompts);                                 // [B]
      g = torch::autograd::grad({scores.sum()}, {x}, {}, false, false, true)[0];  // per-sample ∂rᵢ/∂x (samples are independent)
    }
    if (!g.defined()) g = at::zeros_like(x);
    const at::Tensor norm = g.flatten(1).norm(2, 1);                         // [B]
    at::Tensor direction = normalize_gradient(g, mode, eps);
    if (gain_weight.defined()) direction = direction * per_sample_factor(gain_weight, direction);
    out.direction += wr.weight * direction;
    out.scores[wr.key()] = scores.detach();
    out.norms[wr.key()] = norm.detach();
  }
  return out;
}

at::Tensor cfg_direction(const UNet2DConditionModel& teacher, const NoiseSchedule& s, const Conditioning& c,
                         const at::Tensor& x0, int64_t t_min, int64_t t_max, bool normalize, double eps,
                         at::Generator& generator, const BatchShard& shard) {
  if (!c.uncond.defined()) throw Error("the CFG implicit reward needs the empty prompt's conditioning");
  at::NoGradGuard no_grad;
  const at::Tensor t = shard.slice(at::randint(t_min, t_max + 1, {shard.global(x0.size(0))}, generator)).to(x0.device());
  const at::Tensor noise = shard.randn(generator, x0.sizes(), x0.options().dtype(at::kFloat));
  const at::Tensor x_t = add_noise(s, x0.detach(), noise, t);
  // One batched call for [unconditional; conditional] (ε-prediction assumed by the formula).
  if (s.config.prediction_type != PredictionType::epsilon)
    throw Error("the CFG implicit reward is implemented for epsilon-prediction teachers");
  const at::Tensor both = teacher.forward(at::cat({x_t, x_t}), at::cat({t, t}), at::cat({c.uncond, c.cond}));
  const auto parts = both.chunk(2);
  // ∇ log p(c | x_t) = ∇ log p(x_t | c) − ∇ log p(x_t) = −(ε_c − ε_u) / √(1−ᾱ_t)  (score_from_eps)
  const at::Tensor direction = score_from_eps(parts[1] - parts[0], s.alpha_bar(t, x0));
  return normalize ? normalize_per_sample(direction, eps) : direction;
}

at::Tensor surrogate_loss(const at::Tensor& direction, const at::Tensor& x) {
  return -(direction.detach() * x).flatten(1).sum(1).mean();
}

}  // namespace rewardgen
