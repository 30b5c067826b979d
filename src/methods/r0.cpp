// R0 (and R0+), docs/r0.md. Each training step is the algorithm:
//   1. prompts c (task-balanced), noise x_T, η ~ U[0, η_max]^{K×B}
//   2. x̂₀ = G_θ(x_T, c; η): K DDIM steps of the generator, gradient through all of them
//      (R0+: only through step k*, whose x̂₀ is the output)
//   3. images x = D(x̂₀) (VAE decoder, unclamped)
//   4. per reward: gᵢ = ∇ₓ rᵢ(x, c), ĝᵢ = gᵢ / (‖gᵢ‖ + ε) per sample (or over the batch); g = Σ wᵢ ĝᵢ   (image space)
//   5. the CFG implicit reward: ĝ_cfg = normalised −(ε_θ₀(x_t, c) − ε_θ₀(x_t, ∅)) at x_t ~ q(x_t | x̂₀)  (latent space)
//   6. L = −⟨sg(g), x⟩ − w_cfg ⟨sg(ĝ_cfg), x̂₀⟩ + λ ‖θ − θ₀‖²; one AdamW step.
#include "methods/r0.h"

#include <optional>

#include "core/error.h"

namespace rewardgen {

R0Config::R0Config() {
  trainer.max_steps = 100000;  // bounded by the job's --minutes in practice
  trainer.lr = 1e-5;
  trainer.grad_clip = 1.0;
  trainer.checkpoint_every = 25;
  trainer.eval_every = 100;
  // world.clip_contrast: the attributes that tell a prompt from its near misses (docs/r0.md: it
  // reached the old defaults' accuracy in a third of the steps).
  rewards = {{"world.compositional", 1.0}, {"world.clip", 1.0}, {"world.clip_contrast", 1.0}};
  generator.ema_decay = 0.99;  // evaluate and export the EMA (a horizon of ~100 steps)
}

R0Config read_r0_config(ConfigReader& r) {
  R0Config c;
  read_reward_backprop_config(r, c);
  read_gradient_normalization(r, c.normalization);
  r.optional("cfg_reward", c.cfg_reward, Range{0, 1e3})
      .optional("cfg_t_min", c.cfg_t_min, Range{0, 999})
      .optional("cfg_t_max", c.cfg_t_max, Range{0, 999})
      .optional("weight_regularization", c.weight_regularization)
      .optional("weight_lambda", c.weight_lambda, Range{0, 1e9})
      .optional("random_eta", c.random_eta)
      .optional("eta_max", c.eta_max, Range{0, 1})
      .optional("intermediate_supervision", c.intermediate_supervision)
      .optional("lookahead_steps", c.lookahead.steps, Range{0, 10000})
      .optional("lookahead_lr", c.lookahead.lr, Range{0, 10, true})
      .optional("lookahead_gain_scale", c.lookahead.gain_scale, Range{0, 1e6});
  if (c.cfg_t_min > c.cfg_t_max) throw Error(str(r.file(), ": cfg_t_min ", c.cfg_t_min, " > cfg_t_max ", c.cfg_t_max));
  if (c.rewards.empty() && c.cfg_reward == 0) throw Error(str(r.file(), ": R0 needs at least one reward (rewards or cfg_reward)"));
  return c;
}

Json r0_config_json(const R0Config& c) {
  Json j = reward_backprop_config_json(c);
  j.update({{"cfg_reward", c.cfg_reward},
            {"cfg_t_min", c.cfg_t_min},
            {"cfg_t_max", c.cfg_t_max},
            {"weight_regularization", c.weight_regularization},
            {"weight_lambda", c.weight_lambda},
            {"random_eta", c.random_eta},
            {"eta_max", c.eta_max},
            {"intermediate_supervision", c.intermediate_supervision},
            {"lookahead_steps", c.lookahead.steps},
            {"lookahead_lr", c.lookahead.lr},
            {"lookahead_gain_scale", c.lookahead.gain_scale}});
  add_gradient_normalization_json(j, c.normalization);
  return j;
}

R0Task::R0Task(const R0Config& config, const std::string& model_dir, const Logger& log,
               const at::Device& device)
    : RewardBackpropTask(config, model_dir, log, device), config_(config) {
  if (config_.cfg_reward > 0 && generator_.unet().config().time_cond_proj_dim > 0)
    throw Error("R0's CFG implicit reward needs a teacher with classifier-free guidance; this UNet has a guidance "
                "embedding (an LCM): set cfg_reward to 0");
}

MetricsWriter::Values R0Task::train_step(StepContext& context) {
  at::Generator& rng = context.generator();
  const BatchShard& shard = context.shard();  // data-parallel: draw the global batch, keep this rank's rows
  const int64_t B = shard.global(config_.batch_size), K = generator_.steps();
  // 1. Prompts, noise and the η of every step and sample (regularizer 2).
  const std::vector<std::string> prompts = shard.slice(sample_prompts(B, rng));
  const Conditioning c = generator_.conditioning(prompts, config_.cfg_reward > 0);
  const at::Tensor x_T = shard.slice(generator_.initial_noise(B, rng));
  const at::Tensor eta = config_.random_eta ? at::rand({K, B}, rng, at::kDouble) * config_.eta_max : at::zeros({K, B}, at::kDouble);
  // 2. The generator's K steps (R0+: the reward lands on a random step k*, with grad only there).
  int64_t stop_after = 0, from = 0;
  GradientMode mode = GradientMode::all;
  if (config_.intermediate_supervision) {
    stop_after = at::randint(1, K + 1, {1}, rng).item<int64_t>();
    mode = GradientMode::from_step;
    from = stop_after - 1;
  }
  // Steps 2-5 are forward passes: under bf16 autocast when the config asks (precision).
  std::optional<AutocastScope> autocast(std::in_place, precision_, generator_.device());
  const Rollout r = generator_.rollout(c, x_T, eta, mode, from, stop_after, rng, false, shard);
  // 3. Decode x̂₀ (no clamp on the gradient path).
  const at::Tensor images = generator_.decode(r.x0);  // [B, 3, H, W]
  // 4. Per-reward (normalised) gradients in image space (regularizer 3).
  const GradientNormalizationConfig& normalization = config_.normalization;
  const RewardDirection d = reward_direction(rewards_, images, prompts, normalization.mode(), normalization.eps,
                                              config_.lookahead);
  at::Tensor loss = surrogate_loss(d.direction, images);
  // 5. The teacher's CFG direction as an implicit reward on the latent.
  if (config_.cfg_reward > 0) {
    const at::Tensor g_cfg = cfg_direction(generator_.teacher().unet(), generator_.schedule(), c, r.x0, config_.cfg_t_min,
                                           config_.cfg_t_max, normalization.enabled, normalization.eps, rng, shard);
    loss = loss + config_.cfg_reward * surrogate_loss(g_cfg, r.x0);
  }
  autocast.reset();
  // 6. Weight regularization toward θ₀ (regularizer 1).
  at::Tensor distance;
  if (config_.weight_regularization) {
    distance = generator_.distance_to_initial();
    loss = loss + config_.weight_lambda * distance;
  } else {
    at::NoGradGuard no_grad;  // logged only
    distance = generator_.distance_to_initial();
  }
  context.optimize(loss);

  MetricsWriter::Values values;
  double total = 0;
  for (const WeightedReward& wr : rewards_) total += wr.weight * d.scores.at(wr.key()).mean().item<double>();
  values.emplace_back("reward", total);  // Σ wᵢ mean rᵢ: the progress bar's figure
  add_reward_means(d, values);
  values.emplace_back("loss", loss.item<double>());
  values.emplace_back("distance_to_initial", distance.item<double>());
  if (config_.intermediate_supervision) values.emplace_back("k_star", static_cast<double>(stop_after));
  return values;
}

}  // namespace rewardgen
