#pragma once
// Timestep lists for few- and many-step sampling, descending, as diffusers builds them.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "schedulers/noise_schedule.h"

namespace rewardgen {

// DDIM/DDPM inference timesteps; rounding is half-to-even, as numpy.round. spacing (diffusers' timestep_spacing):
//   "leading"  : k·⌊T/n⌋ + steps_offset, k = n−1 .. 0      (SD 1.5: 981, 961, …, 1 for n = 50)
//   "trailing" : round(T − k·T/n) − 1, k = 0 .. n−1         (starts at T−1: 999, 749, 499, 249 for n = 4)
//   "linspace" : round(linspace(0, T−1, n)), descending
std::vector<int64_t> ddim_timesteps(const SchedulerConfig& config, int64_t steps, const std::string& spacing = "leading");
// The step after t in DDIM's chain: t − ⌊T/n⌋ (negative: past the end, ᾱ = final_alpha_cumprod).
int64_t ddim_prev_timestep(const SchedulerConfig& config, int64_t t, int64_t steps);

// LCM's skipping-step schedule (arXiv 2310.04378 §4.3, diffusers' LCMScheduler): the distillation
// grid k·c − 1 (c = T / original_inference_steps, k = 1..original_inference_steps), reversed, and
// n indices into it by `rule`:
//   "diffusers": ⌊linspace(0, len, n, endpoint=False)⌋, diffusers' LCMScheduler (999, 759, 499, 259 for n = 4)
//   "rlcm"     : every ⌊len/n⌋-th entry, the older scheduler that RLCM patched (999, 759, 519, 279;
//                8 steps: 999, 879, …, 159)
// With first_timestep ≥ 0 the grid is cut to its entries ≤ first_timestep before the rule picks from
// it (first 759, diffusers' rule: 759; 759, 379; 759, 579, 379, 199): an LCM started below T − 1 from
// pure noise (docs/lcd.md, "Where the sampler starts").
std::vector<int64_t> lcm_timesteps(const SchedulerConfig& config, int64_t steps, const std::string& rule = "diffusers",
                                   int64_t first_timestep = -1);
// A first_timestep (a recipe's, `--first-timestep`): −1 (the whole grid) or a timestep in [0, T).
// Error naming `what` otherwise.
void check_first_timestep(int64_t first_timestep, int64_t num_train_timesteps, const std::string& what);

// Where the shipped world LCM was distilled and is sampled from (docs/lcd.md, "Where the sampler
// starts"): at T − 1 = 999 this schedule keeps √ᾱ = 0.068 of the image, at 759 √ᾱ = 0.229. The
// defaults that follow that LCM (LCD's first_timestep, RLCM's policy timesteps, DI*'s t*, the
// verifier pool's LCM sources) all take it from here.
constexpr int64_t kWorldLcmFirstTimestep = 759;

// An explicit timestep list (a recipe's, `--timesteps`): at least one entry, each in [0, T), strictly
// descending. Error naming `what` and the first bad entry otherwise.
void check_timestep_list(const std::vector<int64_t>& timesteps, int64_t num_train_timesteps, const std::string& what);

// The classifier-free guidance combination ε̂ = ε_u + w (ε_c − ε_u) (arXiv 2207.12598 Eq. (6)).
at::Tensor classifier_free_guidance(const at::Tensor& eps_uncond, const at::Tensor& eps_cond, double w);
// The same with w per sample [B].
at::Tensor classifier_free_guidance(const at::Tensor& eps_uncond, const at::Tensor& eps_cond, const at::Tensor& w);

// LCM's guidance embedding of w (arXiv 2310.04378 §4.2, diffusers' get_guidance_scale_embedding):
// w·1000 through a sinusoidal embedding [sin | cos] of `dim` (= the UNet's time_cond_proj_dim).
// The LCM pipeline passes w = guidance_scale − 1. w: [B] -> [B, dim].
at::Tensor guidance_scale_embedding(const at::Tensor& w, int64_t dim);

}  // namespace rewardgen
