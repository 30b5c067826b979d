#pragma once
// The discrete noise schedule of DDPM (arXiv 2006.11239) as Stable Diffusion uses it, and the
// conversions between what a network predicts (ε, x̂₀, v) and the score (docs/design.md).
// Notation: ᾱ_t = alphas_cumprod[t], x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε.
// Shapes: x [B, C, h, w]; per-sample timesteps [B]; per-sample ᾱ as [B, 1, 1, 1].
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rewardgen {

class ConfigReader;

enum class PredictionType { epsilon, v_prediction, sample };
PredictionType parse_prediction_type(const std::string& name);  // diffusers' names; Error otherwise
std::string to_string(PredictionType type);

// How an exported generator samples: its recipe, kept in scheduler_config.json under
// "rewardgen_recipe" so that `rewardgen sample/eval --model DIR` use it with no flags (diffusers
// ignores the key). An empty sampler means the folder carries none.
struct SamplerRecipe {
  std::string sampler;              // ddim | ddpm | lcm | onestep; "" = no recipe
  int64_t steps = 0;
  std::vector<int64_t> timesteps;   // explicit descending list (empty: the sampler's spacing rule)
  std::string timestep_spacing = "leading";
  double eta = 0.0;
  double guidance_scale = 1.0;      // CFG weight, or the LCM guidance scale
  std::string output = "sample";    // sample: the last x_prev | x0: the last x̂₀ (R0, one-step generators)
  int64_t first_timestep = -1;      // lcm: the rule's grid cut to entries ≤ it (an LCM distilled below T − 1); −1: none
};

// = the keys of a diffusers scheduler/config.json that the samplers use (SD 1.x defaults).
struct SchedulerConfig {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.00085, beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // scaled_linear | linear
  PredictionType prediction_type = PredictionType::epsilon;
  bool set_alpha_to_one = false;  // ᾱ after the last step: 1, or ᾱ_0 (SD: false)
  int64_t steps_offset = 1;       // DDIM "leading" spacing adds it (SD: 1)
  double timestep_scaling = 10.0;  // LCM boundary condition
  int64_t original_inference_steps = 50;  // LCM skipping-step schedule
  SamplerRecipe recipe;                   // "rewardgen_recipe" (ours)
};
// Reads the keys above from a scheduler config.json; other keys are left to the caller to report.
void read_scheduler_config(ConfigReader& reader, SchedulerConfig& config);

struct NoiseSchedule {
  SchedulerConfig config;
  at::Tensor alphas_cumprod;  // [T] float64, ᾱ_0 .. ᾱ_{T-1}
  double final_alpha_cumprod = 1.0;  // ᾱ used for "t = −1", the step after the last

  int64_t num_timesteps() const { return config.num_train_timesteps; }
  // ᾱ_t for 0 <= t < T, final_alpha_cumprod for t < 0; Error for t >= T.
  double alpha_bar(int64_t t) const;
  // ᾱ of per-sample timesteps [B] (int64), as [B, 1, 1, 1] in `like`'s dtype and device.
  at::Tensor alpha_bar(const at::Tensor& timesteps, const at::Tensor& like) const;
};

NoiseSchedule make_noise_schedule(const SchedulerConfig& config = {});

// x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε for per-sample timesteps [B] (diffusers' add_noise).
at::Tensor add_noise(const NoiseSchedule& schedule, const at::Tensor& x0, const at::Tensor& noise,
                     const at::Tensor& timesteps);

// x̂₀ and ε̂ implied by a model output at x_t, for ᾱ_t a double or a broadcastable tensor.
struct X0Eps {
  at::Tensor x0, eps;
};
X0Eps x0_and_eps(PredictionType type, const at::Tensor& model_output, const at::Tensor& x_t,
                 const at::Tensor& alpha_bar);
X0Eps x0_and_eps(PredictionType type, const at::Tensor& model_output, const at::Tensor& x_t, double alpha_bar);
// v = √ᾱ ε − √(1−ᾱ) x₀ (Salimans & Ho, arXiv 2202.00512, §4): the v-prediction training target.
at::Tensor v_target(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& alpha_bar);
// The network output that predicts (x₀, ε) exactly, in the given parameterisation.
at::Tensor model_output_for(PredictionType type, const at::Tensor& x0, const at::Tensor& eps,
                            const at::Tensor& alpha_bar);
// Score ∇ log p_t(x_t) = −ε̂ / √(1−ᾱ_t).
at::Tensor score_from_eps(const at::Tensor& eps, const at::Tensor& alpha_bar);

}  // namespace rewardgen
