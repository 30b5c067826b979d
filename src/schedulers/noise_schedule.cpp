#include "schedulers/noise_schedule.h"

#include <cmath>

#include "core/error.h"
#include "core/per_sample.h"
#include "io/json_config.h"
#include "schedulers/timesteps.h"

namespace rewardgen {

PredictionType parse_prediction_type(const std::string& name) {
  if (name == "epsilon") return PredictionType::epsilon;
  if (name == "v_prediction") return PredictionType::v_prediction;
  if (name == "sample") return PredictionType::sample;
  throw Error(str("unknown prediction_type '", name, "' (allowed: epsilon, v_prediction, sample)"));
}

std::string to_string(PredictionType type) {
  switch (type) {
    case PredictionType::epsilon: return "epsilon";
    case PredictionType::v_prediction: return "v_prediction";
    case PredictionType::sample: return "sample";
  }
  return "?";
}

void read_scheduler_config(ConfigReader& r, SchedulerConfig& c) {
  std::string prediction = to_string(c.prediction_type);
  // Upper bounds far above every published scheduler (1000 timesteps, offsets 0 or 1, scaling 10):
  // a 10^12-step schedule would be allocated before anything else failed.
  r.optional("num_train_timesteps", c.num_train_timesteps, between(2, 100000))
      .optional("beta_start", c.beta_start, Range{0, 1, true, true})
      .optional("beta_end", c.beta_end, Range{0, 1, true, true})
      .optional_choice("beta_schedule", c.beta_schedule, {"scaled_linear", "linear"})
      .optional_choice("prediction_type", prediction, {"epsilon", "v_prediction", "sample"})
      .optional("set_alpha_to_one", c.set_alpha_to_one)
      .optional("steps_offset", c.steps_offset, between(0, 100000))
      .optional("timestep_scaling", c.timestep_scaling, Range{0, 10000, true})
      .optional("original_inference_steps", c.original_inference_steps, between(1, 100000));
  if (c.beta_start > c.beta_end)
    throw Error(str(r.file(), ": beta_start ", c.beta_start, " is above beta_end ", c.beta_end, " (betas grow over the schedule)"));
  if (c.steps_offset >= c.num_train_timesteps)
    throw Error(str(r.file(), ": steps_offset ", c.steps_offset, " must be below num_train_timesteps ", c.num_train_timesteps));
  c.prediction_type = parse_prediction_type(prediction);
  if (r.has("rewardgen_recipe")) {
    ConfigReader recipe = r.child("rewardgen_recipe");
    SamplerRecipe& s = c.recipe;
    recipe.optional_choice("sampler", s.sampler, {"ddim", "ddpm", "lcm", "onestep"})
        .optional("steps", s.steps, at_least(1))
        .optional("timesteps", s.timesteps)
        .optional_choice("timestep_spacing", s.timestep_spacing, {"leading", "trailing", "linspace", "rlcm"})
        .optional("first_timestep", s.first_timestep)
        .optional("eta", s.eta, between(0, 1e3))
        .optional("guidance_scale", s.guidance_scale, between(0, 1e3))
        .optional_choice("output", s.output, {"sample", "x0"});
    check_first_timestep(s.first_timestep, c.num_train_timesteps, str(r.file(), ": rewardgen_recipe.first_timestep"));
    if (!s.timesteps.empty()) check_timestep_list(s.timesteps, c.num_train_timesteps, str(r.file(), ": rewardgen_recipe.timesteps"));
    if (!s.timesteps.empty() && static_cast<int64_t>(s.timesteps.size()) != s.steps)
      throw Error(str(r.file(), ": rewardgen_recipe has ", s.timesteps.size(), " timesteps for steps = ", s.steps));
  }
}

NoiseSchedule make_noise_schedule(const SchedulerConfig& config) {
  if (config.num_train_timesteps < 2) throw Error("num_train_timesteps must be >= 2");
  if (!(config.beta_start > 0 && config.beta_start <= config.beta_end && config.beta_end < 1))
    throw Error(str("need 0 < beta_start <= beta_end < 1, got ", config.beta_start, ", ", config.beta_end));
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor betas;
  if (config.beta_schedule == "scaled_linear")  // LDM / SD: β linear in √β
    betas = at::linspace(std::sqrt(config.beta_start), std::sqrt(config.beta_end), config.num_train_timesteps, f64).pow(2);
  else if (config.beta_schedule == "linear")  // DDPM
    betas = at::linspace(config.beta_start, config.beta_end, config.num_train_timesteps, f64);
  else
    throw Error(str("unknown beta_schedule '", config.beta_schedule, "' (allowed: scaled_linear, linear)"));
  NoiseSchedule s;
  s.config = config;
  s.alphas_cumprod = at::cumprod(1 - betas, 0);  // ᾱ_t = Π_{s<=t} (1 − β_s)
  s.final_alpha_cumprod = config.set_alpha_to_one ? 1.0 : s.alphas_cumprod[0].item<double>();
  return s;
}

double NoiseSchedule::alpha_bar(int64_t t) const {
  if (t < 0) return final_alpha_cumprod;
  if (t >= num_timesteps()) throw Error(str("timestep ", t, " is outside [0, ", num_timesteps(), ")"));
  return alphas_cumprod.data_ptr<double>()[t];
}

at::Tensor NoiseSchedule::alpha_bar(const at::Tensor& timesteps, const at::Tensor& like) const {
  const at::Tensor t = timesteps.to(at::kLong).cpu().flatten();
  if (t.numel() > 0 && (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= num_timesteps()))
    throw Error(str("timesteps must lie in [0, ", num_timesteps(), "), got min ", t.min().item<int64_t>(), " max ",
                    t.max().item<int64_t>()));
  return per_sample_factor(alphas_cumprod.index_select(0, t), like);  // [B, 1, 1, 1]
}

at::Tensor add_noise(const NoiseSchedule& schedule, const at::Tensor& x0, const at::Tensor& noise,
                     const at::Tensor& timesteps) {
  const at::Tensor ab = schedule.alpha_bar(timesteps, x0);
  return ab.sqrt() * x0 + (1 - ab).sqrt() * noise;
}

X0Eps x0_and_eps(PredictionType type, const at::Tensor& out, const at::Tensor& x_t, const at::Tensor& ab) {
  const at::Tensor sqrt_ab = ab.sqrt(), sqrt_1m_ab = (1 - ab).sqrt();
  switch (type) {
    case PredictionType::epsilon:  // DDIM Eq. (12): x̂₀ = (x_t − √(1−ᾱ) ε̂) / √ᾱ
      return {(x_t - sqrt_1m_ab * out) / sqrt_ab, out};
    case PredictionType::sample:  // ε̂ = (x_t − √ᾱ x̂₀) / √(1−ᾱ)
      return {out, (x_t - sqrt_ab * out) / sqrt_1m_ab};
    case PredictionType::v_prediction:  // x̂₀ = √ᾱ x_t − √(1−ᾱ) v, ε̂ = √(1−ᾱ) x_t + √ᾱ v
      return {sqrt_ab * x_t - sqrt_1m_ab * out, sqrt_1m_ab * x_t + sqrt_ab * out};
  }
  throw Error("unknown prediction type");
}

X0Eps x0_and_eps(PredictionType type, const at::Tensor& out, const at::Tensor& x_t, double ab) {
  return x0_and_eps(type, out, x_t, at::scalar_tensor(ab, x_t.options()));
}

at::Tensor v_target(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& ab) {
  return ab.sqrt() * eps - (1 - ab).sqrt() * x0;
}

at::Tensor model_output_for(PredictionType type, const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& ab) {
  switch (type) {
    case PredictionType::epsilon: return eps;
    case PredictionType::sample: return x0;
    case PredictionType::v_prediction: return v_target(x0, eps, ab);
  }
  throw Error("unknown prediction type");
}

at::Tensor score_from_eps(const at::Tensor& eps, const at::Tensor& ab) { return -eps / (1 - ab).sqrt(); }

}  // namespace rewardgen
