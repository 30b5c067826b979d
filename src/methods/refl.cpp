#include "methods/refl.h"

#include <optional>

#include "core/error.h"

namespace rewardgen {

ReflConfig::ReflConfig() {
  trainer.max_steps = 100000;
  trainer.lr = 1e-5;
  trainer.grad_clip = 1.0;
  trainer.checkpoint_every = 25;
  trainer.eval_every = 100;
  rewards = {{"world.compositional", 1.0}};
}

ReflConfig read_refl_config(ConfigReader& r) {
  ReflConfig c;
  read_reward_backprop_config(r, c);
  const int64_t K = static_cast<int64_t>(c.generator.timesteps.size());
  r.optional_choice("variant", c.variant, {"refl", "draft"})
      .optional("refl_first_step", c.refl_first_step, Range{0, 63})
      .optional("refl_lambda", c.refl_lambda, Range{-1e9, 1e9})
      .optional("refl_scale", c.refl_scale, Range{0, 1e9, true, false})
      .optional("draft_k", c.draft_k, Range{1, 64});
  c.refl_first_step = std::min(c.refl_first_step, K - 1);
  if (c.draft_k > K) throw Error(str(r.file(), ": draft_k = ", c.draft_k, " exceeds the generator's ", K, " steps"));
  if (c.rewards.empty()) throw Error(str(r.file(), ": ReFL/DRaFT need at least one reward"));
  return c;
}

Json refl_config_json(const ReflConfig& c) {
  Json j = reward_backprop_config_json(c);
  j.update({{"variant", c.variant}, {"refl_first_step", c.refl_first_step}, {"refl_lambda", c.refl_lambda},
            {"refl_scale", c.refl_scale}, {"draft_k", c.draft_k}});
  return j;
}

ReflTask::ReflTask(const ReflConfig& config, const std::string& model_dir, const Logger& log,
                   const at::Device& device)
    : RewardBackpropTask(config, model_dir, log, device), config_(config) {}

MetricsWriter::Values ReflTask::train_step(StepContext& context) {
  at::Generator& rng = context.generator();
  const BatchShard& shard = context.shard();  // data-parallel: draw the global batch, keep this rank's rows
  const int64_t K = generator_.steps();
  const std::vector<std::string> prompts = shard.slice(sample_prompts(shard.global(config_.batch_size), rng));
  const Conditioning c = generator_.conditioning(prompts, false);
  const at::Tensor x_T = shard.slice(generator_.initial_noise(shard.global(config_.batch_size), rng));
  const int64_t B = x_T.size(0);
  const at::Tensor eta = at::zeros({K, B}, at::kDouble);  // deterministic DDIM: the rollout draws nothing, so needs no shard
  const bool refl = config_.variant == "refl";
  int64_t step = K - 1;
  // Steps 1-3 are forward passes: under bf16 autocast when the config asks (precision).
  std::optional<AutocastScope> autocast(std::in_place, precision_, generator_.device());
  Rollout r;
  if (refl) {
    // 1. A random late step; no gradient before it, one UNet call with gradient at it.
    step = at::randint(config_.refl_first_step, K, {1}, rng).item<int64_t>();
    r = generator_.rollout(c, x_T, eta, GradientMode::from_step, step, step + 1, rng);
  } else {
    // 1. The whole rollout, gradient through its last draft_k steps (truncated backprop).
    r = generator_.rollout(c, x_T, eta, GradientMode::last_k, config_.draft_k, 0, rng);
  }
  // 2. The reward on the decoded x̂₀, its raw gradient.
  const at::Tensor images = generator_.decode(r.x0);
  RewardDirection d = reward_direction(rewards_, images, prompts, GradientNormalization::none, 0.0);
  const at::TensorOptions on_device = at::TensorOptions().device(generator_.device());
  at::Tensor total = at::zeros({B}, on_device);
  for (const WeightedReward& wr : rewards_) total = total + wr.weight * d.scores.at(wr.key());
  // 3. ReFL: ∂/∂x ReLU(λ − r)·s = −s·1[r < λ]·∂r/∂x; DRaFT: −∂r/∂x. Both through −⟨sg(g), x⟩.
  at::Tensor per_sample = at::ones({B}, on_device);
  if (refl) per_sample = total.lt(config_.refl_lambda).to(at::kFloat) * config_.refl_scale;
  const at::Tensor loss = surrogate_loss(d.direction * per_sample.view({B, 1, 1, 1}), images);
  autocast.reset();
  context.optimize(loss);

  MetricsWriter::Values values;
  values.emplace_back("reward", total.mean().item<double>());
  add_reward_means(d, values);
  values.emplace_back("loss", refl ? (config_.refl_lambda - total).clamp_min(0).mean().item<double>() * config_.refl_scale
                                   : -total.mean().item<double>());
  if (refl) values.emplace_back("refl_step", static_cast<double>(step));
  return values;
}

}  // namespace rewardgen
