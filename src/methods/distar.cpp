// DI*, docs/distar.md. Each training step is the algorithm (SiD's alternation, arXiv 2404.04057
// Algorithm 1, with DI*'s generator loss, arXiv 2410.20898 §3):
//   1. ψ-step(s): prompts c (task-balanced), z ~ N(0, I), x̂₀ = g_θ(z, c) without grad (one UNet call
//      at t*); t ~ U{t_min..t_max}, ε; L_ψ = ‖ε_ψ(√ᾱ x̂₀ + √(1−ᾱ) ε, t, c) − ε‖²           (DSM)
//   2. fresh c, z; x̂₀ = g_θ(z, c) with grad
//   3. θ-step, ψ's and the reference's parameters frozen: t, ε; x_t = √ᾱ x̂₀ + √(1−ᾱ) ε;
//      D_ψ(x_t), D_ref(x_t) with CFG w_cfg (the implicit reward); L_div (divergence_loss)
//   4. L_G = −α r(D(x̂₀), c) + L_div, the reward through the VAE decoder; one Adam step on θ;
//      the trainer's EMA of θ is what evaluation and export use.
#include "methods/distar.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <torch/autograd.h>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/per_sample.h"
#include "models/diffusers_io.h"
#include "models/lora.h"
#include "rewards/world_rewards.h"
#include "schedulers/denoising_loss.h"
#include "train/checkpoint.h"

namespace rewardgen {

namespace {

// requires_grad(false) on a module's parameters for a scope, restored after: ψ during the θ-step,
// so that the divergence's gradient reaches ψ's input (x_t) but not its weights.
class FrozenParameters {
 public:
  explicit FrozenParameters(torch::nn::Module& module) {
    for (at::Tensor& p : module.parameters()) {
      if (!p.requires_grad()) continue;
      p.requires_grad_(false);
      frozen_.push_back(p);
    }
  }
  ~FrozenParameters() {
    for (at::Tensor& p : frozen_) p.requires_grad_(true);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<at::Tensor> frozen_;
};

// Σ over all but the batch dimension: [B, ...] → [B].
at::Tensor per_sample_sum(const at::Tensor& x) { return x.flatten(1).sum(1); }

}  // namespace

DistarConfig::DistarConfig() {
  // SiD's defaults where the DI* paper is silent (docs/distar.md): Adam β (0, 0.999), lr 1e-5 for both
  // networks, one ψ-step per θ-step, t ≤ 800 (docs/distar.md).
  trainer.max_steps = 100000;  // bounded by the job's --minutes in practice
  trainer.lr = 1e-5;
  trainer.adam.beta1 = 0.0;
  trainer.adam.beta2 = 0.999;
  trainer.grad_clip = 1.0;
  trainer.checkpoint_every = 50;
  trainer.eval_every = 200;
  // The one-step generator starts from the shipped LCM: f at t* with guidance 3 through its embedding.
  generator.sampler = "lcm";
  generator.guidance = 3.0;
  generator.timesteps = {t_star};
  generator.ema_decay = 0.99;
  batch_size = 16;
  rewards = {{"world.compositional", 1.0}};
}

DistarConfig read_distar_config(ConfigReader& r, const std::string& regularizer) {
  DistarConfig c;
  c.regularizer = regularizer;
  read_reward_backprop_config(r, c);
  read_gradient_normalization(r, c.normalization);
  r.optional("alpha", c.alpha, Range{0, 1e6})
      .optional_choice("distance", c.distance, {"pseudo_huber", "l2"})
      .optional("huber_c", c.huber_c, Range{0, 1e6, true, false})
      .optional("reference_guidance", c.reference_guidance, Range{0, 100})
      .optional("reference_model", c.reference_model)
      .optional("t_min", c.t_min, Range{0, 999})
      .optional("t_max", c.t_max, Range{0, 999})
      .optional("t_star", c.t_star, Range{1, 999})
      .optional("fake_steps", c.fake_steps, Range{1, 100})
      .optional("fake_lr_scale", c.fake_lr_scale, Range{0, 1e4, true, false})
      .optional("sid_weighting", c.sid_weighting);
  if (c.t_min > c.t_max) throw Error(str(r.file(), ": t_min ", c.t_min, " > t_max ", c.t_max));
  // One generator step at t*: the generator's timesteps follow t_star (a list from the config is
  // refused rather than silently replaced).
  if (r.has("generator") && r.object().at("generator").contains("timesteps"))
    throw Error(str(r.file(), ": DI* trains a one-step generator; set its input timestep with t_star, not generator.timesteps"));
  c.generator.timesteps = {c.t_star};
  // Started from a diffusion model (the teacher, sampler ddim), the generator is its DDIM x̂₀ at t*:
  // one UNet evaluation only without classifier-free guidance, so guidance defaults to 1 there and
  // any other value is refused (an LCM takes its guidance through the w embedding, in the same call).
  if (c.generator.sampler == "ddim") {
    const bool guidance_given = r.has("generator") && r.object().at("generator").contains("guidance");
    if (!guidance_given) c.generator.guidance = 1.0;
    if (c.generator.guidance != 1.0)
      throw Error(str(r.file(), ": generator.guidance ", c.generator.guidance, " with the ddim sampler would make DI*'s ",
                      "one-step generator two UNet calls (classifier-free guidance); use 1, or start from an LCM"));
  }
  // A reward of weight 0 is dropped (RewardBackpropTask), so α > 0 needs one of positive weight.
  const bool weighted = std::any_of(c.rewards.begin(), c.rewards.end(), [](const auto& reward) { return reward.second > 0; });
  if (c.alpha > 0 && !weighted)
    throw Error(str(r.file(), ": alpha ", c.alpha, " > 0 needs a reward of positive weight (rewards)"));
  return c;
}

Json distar_config_json(const DistarConfig& c) {
  Json j = reward_backprop_config_json(c);
  j["generator"].erase("timesteps");  // written as t_star, read back through it
  j.update({{"alpha", c.alpha},
            {"distance", c.distance},
            {"huber_c", c.huber_c},
            {"reference_guidance", c.reference_guidance},
            {"reference_model", c.reference_model},
            {"t_min", c.t_min},
            {"t_max", c.t_max},
            {"t_star", c.t_star},
            {"fake_steps", c.fake_steps},
            {"fake_lr_scale", c.fake_lr_scale},
            {"sid_weighting", c.sid_weighting}});
  add_gradient_normalization_json(j, c.normalization);
  return j;
}

at::Tensor distance_gradient(const at::Tensor& y, const std::string& distance, double huber_c) {
  if (distance == "l2") return 2.0 * y;
  // d(y) = √(‖y‖² + c²) − c  ⇒  d′(y) = y / √(‖y‖² + c²)   (DI* Eq. (3.4), SIM's pseudo-Huber)
  const at::Tensor norm = (per_sample_sum(y.pow(2)) + huber_c * huber_c).sqrt();
  return y / per_sample_factor(norm, y);
}

at::Tensor distance_value(const at::Tensor& y, const std::string& distance, double huber_c) {
  const at::Tensor squared = per_sample_sum(y.pow(2));
  return distance == "l2" ? squared : (squared + huber_c * huber_c).sqrt() - huber_c;
}

at::Tensor sid_weight(const at::Tensor& x0, const at::Tensor& reference) {
  at::NoGradGuard no_grad;
  return 1.0 / (x0.detach() - reference.detach()).abs().flatten(1).mean(1).clamp_min(1e-5);
}

at::Tensor divergence_loss(const DivergenceInputs& in, const std::string& regularizer, const std::string& distance,
                           double huber_c) {
  at::Tensor per_sample;
  if (regularizer == "kl") {
    // Diff-Instruct: ∇_θ KL = E w(t) ⟨s_ψ(x_t) − s_ref(x_t), ∂x_t/∂θ⟩ with the scores as constants;
    // s_ψ − s_ref = √ᾱ/(1−ᾱ) (D_ψ − D_ref), the positive factor folded into w(t).
    per_sample = per_sample_sum((in.fake_x0 - in.reference).detach() * in.x0);
  } else {
    // SIM (arXiv 2410.16794 Theorem 3.1) in the denoiser's space: for scores s = (√ᾱ D − x_t)/(1−ᾱ),
    // s_ψ − s_ref = k (D_ψ − D_ref) and s_ψ(x_t) − ∇log q_t(x_t | x̂₀) = k (D_ψ − x̂₀), k = √ᾱ/(1−ᾱ),
    // so SIM's −⟨d′(y_s), s_ψ − ∇log q_t⟩ is ⟨d′(y), x̂₀ − D_ψ⟩ times a positive w(t), with the
    // pseudo-Huber's c read in the denoiser's space (c/k in the score's): c stays in latent units at
    // every t. θ enters through x̂₀ and x_t only; the caller freezes the networks' parameters.
    const at::Tensor y = in.fake_x0 - in.reference;
    per_sample = per_sample_sum(distance_gradient(y, distance, huber_c) * (in.x0 - in.fake_x0));
  }
  if (in.weight.defined()) per_sample = per_sample * in.weight;
  return per_sample.mean();
}

at::Tensor output_gradient(const at::Tensor& x0, const at::Tensor& divergence, const at::Tensor& reward_term,
                           MetricsWriter::Values& values) {
  // Each term's graph up to x̂₀ only (the generator's part is kept for the caller's backward).
  const at::Tensor divergence_grad = torch::autograd::grad({divergence}, {x0}, {}, /*retain_graph=*/true)[0];
  const at::Tensor reward_grad =
      reward_term.defined() ? torch::autograd::grad({reward_term}, {x0}, {}, /*retain_graph=*/true)[0] : at::Tensor();
  at::NoGradGuard no_grad;
  const double divergence_norm = divergence_grad.norm().item<double>();
  values.emplace_back("output_grad_norm/divergence", divergence_norm);
  if (!reward_grad.defined()) return divergence_grad;
  const double reward_norm = reward_grad.norm().item<double>();
  values.emplace_back("output_grad_norm/reward", reward_norm);
  // cos ∠ over the whole batch: −1 when the divergence undoes the reward's push
  values.emplace_back("output_grad_cosine",
                      (reward_grad * divergence_grad).sum().item<double>() / std::max(reward_norm * divergence_norm, 1e-30));
  return divergence_grad + reward_grad;
}

DistarTask::DistarTask(const DistarConfig& config, const std::string& model_dir, const Logger& log,
                       const at::Device& device)
    : RewardBackpropTask(config, model_dir, log, device), config_(config) {
  const std::string reference_dir = config_.reference_model.empty() ? world_model_dir() : config_.reference_model;
  const LoadOptions on_device{at::kFloat, device};
  reference_ = load_unet(reference_dir + "/unet", on_device, log);
  const UNet2DConditionConfig& ref = reference_->config();
  const UNet2DConditionConfig& gen = generator_.unet().config();
  if (ref.time_cond_proj_dim > 0)
    throw Error(str("DI*'s reference must be a diffusion model (its score, with classifier-free guidance); the UNet of '",
                    reference_dir, "' has a guidance embedding (an LCM)"));
  if (ref.in_channels != gen.in_channels || ref.sample_size != gen.sample_size || ref.cross_attention_dim != gen.cross_attention_dim)
    throw Error(str("the reference UNet of '", reference_dir, "' (", ref.in_channels, " channels, ", ref.sample_size,
                    " latent, text width ", ref.cross_attention_dim.front(), ") does not match the generator's (", gen.in_channels, ", ",
                    gen.sample_size, ", ", gen.cross_attention_dim.front(), ")"));
  reference_->eval();
  freeze_base(*reference_);
  fake_score_ = load_unet(reference_dir + "/unet", on_device, log);  // ψ starts as the reference
  reference_schedule_ = make_noise_schedule(load_scheduler_config(reference_dir + "/scheduler", log));
  if (config_.t_max >= reference_schedule_.num_timesteps())
    throw Error(str("t_max ", config_.t_max, " is outside the reference's ", reference_schedule_.num_timesteps(), " timesteps"));
  log.info(str(config_.regularizer == "kl" ? "DI*-KL" : "DI*", ": one-step generator at t* = ", config_.t_star, " (",
               generator_.config().sampler, "), reward scale α = ", config_.alpha,
               config_.normalization.enabled ? str(" on gradients normalised per ", config_.normalization.scope) : std::string(),
               ", reference CFG ", config_.reference_guidance,
               config_.regularizer == "kl" ? std::string(", integral-KL regulariser")
                                           : str(", ", config_.distance, " distance", config_.distance == "l2" ? "" : str(" c = ", config_.huber_c)),
               ", t ~ U{", config_.t_min, "..", config_.t_max, "}"));
}

std::vector<ParamGroup> DistarTask::parameter_groups() {
  NamedTensors fake;
  for (const auto& p : fake_score_->named_parameters()) fake.emplace_back(p.key(), p.value());
  return {ParamGroup{"generator", generator_.trainable_parameters(), std::nullopt, 1.0, -1},
          ParamGroup{"fake_score", std::move(fake), std::nullopt, config_.fake_lr_scale, -1}};
}

namespace {

// t ~ U{t_min..t_max} and ε ~ N(0, I) for this rank's rows x̂₀ of the global batch (drawn for all of it).
std::pair<at::Tensor, at::Tensor> noising_draws(const at::Tensor& x0, int64_t t_min, int64_t t_max, StepContext& context) {
  const BatchShard& shard = context.shard();
  const at::Tensor t = shard.slice(at::randint(t_min, t_max + 1, {shard.global(x0.size(0))}, context.generator())).to(x0.device());
  const at::Tensor noise = shard.randn(context.generator(), x0.sizes(), x0.options().dtype(at::kFloat)).to(x0.dtype());
  return {t, noise};
}

}  // namespace

DistarTask::Generated DistarTask::generate(StepContext& context, bool with_grad) const {
  at::Generator& rng = context.generator();
  const BatchShard& shard = context.shard();
  const int64_t B = shard.global(config_.batch_size);
  Generated g;
  g.prompts = shard.slice(sample_prompts(B, rng));
  g.conditioning = generator_.conditioning(g.prompts, config_.reference_guidance != 1.0);
  const at::Tensor z = shard.slice(generator_.initial_noise(B, rng));
  const AutocastScope autocast(precision_, generator_.device());  // forward passes in bf16 when the config asks
  // One deterministic step (η = 0): the rollout draws nothing, so it needs no shard.
  const Rollout r = generator_.rollout(g.conditioning, z, at::zeros({1, z.size(0)}, at::kDouble),
                                       with_grad ? GradientMode::all : GradientMode::none, 0, 0, rng);
  g.x0 = generator_.output_latents(r);
  return g;
}

at::Tensor DistarTask::fake_score_loss(const Generated& batch, StepContext& context) const {
  const at::Tensor sample = batch.x0.detach();
  const auto [t, noise] = noising_draws(sample, config_.t_min, config_.t_max, context);
  const at::Tensor x_t = add_noise(reference_schedule_, sample, noise, t);
  const at::Tensor out = fake_score_->forward(x_t, t, batch.conditioning.cond);
  return denoising_loss(reference_schedule_.config.prediction_type, out, sample, noise,
                        reference_schedule_.alpha_bar(t, sample), 0.0)
      .loss;
}

double DistarTask::fake_score_step(StepContext& context, const Generated& batch) {
  std::optional<AutocastScope> autocast(std::in_place, precision_, generator_.device());
  const at::Tensor loss = fake_score_loss(batch, context);
  autocast.reset();
  context.zero_grad();
  context.backward(loss);
  context.optimizer_step("fake_score");
  return loss.item<double>();
}

MetricsWriter::Values DistarTask::generator_step(StepContext& context, const Generated& batch) {
  const at::Tensor& x0 = batch.x0;
  MetricsWriter::Values values;
  // 3. The divergence at x_t ~ q_t(x_t | x̂₀), ψ frozen: its gradient reaches θ through x̂₀ and x_t.
  const FrozenParameters frozen(*fake_score_);
  std::optional<AutocastScope> autocast(std::in_place, precision_, generator_.device());
  const auto [t, noise] = noising_draws(x0, config_.t_min, config_.t_max, context);
  const at::Tensor x_t = add_noise(reference_schedule_, x0, noise, t);
  const at::Tensor alpha_bar = reference_schedule_.alpha_bar(t, x_t);
  const PredictionType type = reference_schedule_.config.prediction_type;
  DivergenceInputs in;  // the divergence in fp32 (the networks may run in bf16)
  in.x0 = x0.to(at::kFloat);
  {
    // Diff-Instruct's gradient treats both scores as constants: no graph through the networks.
    std::optional<at::NoGradGuard> no_grad;
    if (config_.regularizer == "kl") no_grad.emplace();
    in.fake_x0 = x0_and_eps(type, fake_score_->forward(x_t, t, batch.conditioning.cond), x_t, alpha_bar).x0.to(at::kFloat);
    const at::Tensor guidance = at::scalar_tensor(config_.reference_guidance, at::kDouble);
    in.reference =
        x0_and_eps(type, guided_model_output(*reference_, x_t, t, batch.conditioning, guidance), x_t, alpha_bar).x0.to(at::kFloat);
  }
  if (config_.sid_weighting) in.weight = sid_weight(in.x0, in.reference);
  const at::Tensor divergence = divergence_loss(in, config_.regularizer, config_.distance, config_.huber_c);
  at::Tensor reward_term;  // α times the rewards' surrogate; undefined when α = 0
  {
    at::NoGradGuard no_grad;  // logged: the distance itself, d(D_ψ − D_ref)
    values.emplace_back("score_distance", distance_value(in.fake_x0 - in.reference, config_.distance, config_.huber_c).mean().item<double>());
  }
  values.emplace_back("divergence_loss", divergence.item<double>());
  // 4. The reward through the VAE decoder: −α r as the surrogate −α ⟨sg(∂r/∂x), x⟩ (the same gradient).
  //    With α = 0 (pure score distillation) the rewards are still scored, for the log only.
  if (!rewards_.empty()) {
    RewardDirection d;
    if (config_.alpha > 0) {
      const at::Tensor images = generator_.decode(x0);
      d = reward_direction(rewards_, images, batch.prompts, config_.normalization.mode(), config_.normalization.eps);
      reward_term = config_.alpha * surrogate_loss(d.direction, images);
    } else {
      at::NoGradGuard no_grad;
      const at::Tensor images = generator_.decode(x0).clamp(-1, 1);
      for (const WeightedReward& wr : rewards_) d.scores[wr.key()] = wr.reward->score(images, batch.prompts);
    }
    double total = 0;
    for (const WeightedReward& wr : rewards_) total += wr.weight * d.scores.at(wr.key()).mean().item<double>();
    values.emplace(values.begin(), "reward", total);  // the progress bar's figure
    add_reward_means(d, values);
  }
  autocast.reset();
  const at::Tensor loss = reward_term.defined() ? divergence + reward_term : divergence;
  const at::Tensor gradient = output_gradient(x0, divergence, reward_term, values);
  context.zero_grad();
  context.backward(loss, x0, gradient);
  context.optimizer_step("generator");
  values.emplace_back("loss", loss.item<double>());
  return values;
}

MetricsWriter::Values DistarTask::train_step(StepContext& context) {
  // The forward passes of steps 1-4 run under bf16 autocast when the config asks (precision).
  // As SiD: each ψ-step on fresh samples of the current θ, then the θ-step on samples of its own.
  double fake_loss = 0;
  for (int64_t i = 0; i < config_.fake_steps; ++i) fake_loss = fake_score_step(context, generate(context, false));
  MetricsWriter::Values values = generator_step(context, generate(context, true));
  values.emplace_back("fake_score_loss", fake_loss);
  return values;
}

void DistarTask::save_state(TensorMap& out) const {
  generator_.save_state(out);
  add_module_state(out, "distar/fake_score/", *fake_score_);
}

void DistarTask::load_state(const TensorMap& in) {
  generator_.load_state(in);
  load_module_state(in, "distar/fake_score/", *fake_score_);
}

}  // namespace rewardgen
