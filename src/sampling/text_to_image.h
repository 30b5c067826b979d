#pragma once
// Text-to-image sampling with a Stable-Diffusion-style pipeline: encode prompts with CLIP, start
// from Gaussian latents, run a sampler (DDIM, DDPM, LCM multistep, or one step), decode with the
// VAE. The building block of `rewardgen sample`, `eval`, and every method's rollouts.
// Letters: B batch, h×w latent, H×W pixels, L tokens, D text width.
#include <memory>
#include <string>
#include <vector>

#include "models/diffusers_io.h"
#include "sampling/pipeline.h"
#include "sampling/rollout.h"
#include "text/clip_tokenizer.h"

namespace rewardgen {

class ProgressBar;

struct SamplerOptions {
  std::string sampler = "ddim";  // ddim | ddpm | lcm | onestep
  int64_t steps = 25;
  // ddim/ddpm: classifier-free guidance weight (1 = no guidance, one network call per step).
  // lcm: passed through the UNet's guidance embedding (w − 1, LCM) when it has time_cond_proj_dim,
  // else used as CFG. onestep: CFG as for ddim.
  double guidance_scale = 7.5;
  double eta = 0.0;                          // ddim stochasticity
  std::string timestep_spacing = "leading";  // ddim/ddpm: leading | trailing | linspace; lcm: rlcm = RLCM's
                                             // rule, any other diffusers' (schedulers/timesteps.h)
  std::vector<int64_t> timesteps;            // an explicit descending list (steps entries); empty: the spacing rule
  int64_t first_timestep = -1;               // lcm: the rule picks from the grid cut to entries ≤ it; −1: the whole grid
  std::string output = "sample";             // sample: the last step's x_prev | x0: its x̂₀ (R0's generators)
  int64_t height = 0, width = 0;             // pixels; 0: the UNet's sample_size × the VAE factor
};
// Parses and checks the sampler name and numbers; Error naming the bad one.
void validate(const SamplerOptions& options);
// The options a generator's recipe (scheduler_config.json "rewardgen_recipe") asks for.
SamplerOptions sampler_options(const SamplerRecipe& recipe);
SamplerRecipe sampler_recipe(const SamplerOptions& options);
// The rollout that samples with `options` (no gradient, one η for every step).
RolloutOptions rollout_options(const SamplerOptions& options, const SchedulerConfig& scheduler);

class TextToImage {
 public:
  TextToImage(Pipeline pipeline, ClipTokenizer tokenizer);

  at::Tensor encode_prompts(const std::vector<std::string>& prompts) const;  // [B, L, D]
  // Latents x₀ (scaled by the VAE's scaling_factor) for the prompts; noise from `generator` on the
  // CPU, so seeds give the same images on every device. Number of UNet evaluations in *nfe.
  at::Tensor sample_latents(const std::vector<std::string>& prompts, const SamplerOptions& options,
                            at::Generator& generator, ProgressBar* progress = nullptr, int64_t* nfe = nullptr) const;
  // Scaled latents -> images [B, 3, H, W], clamped to [-1, 1] (for viewing and judging).
  at::Tensor decode(const at::Tensor& latents) const;
  // The same without the clamp, differentiable: for rewards on gradient paths (a clamp zeroes the
  // gradient of every saturated pixel).
  at::Tensor decode_unclamped(const at::Tensor& latents) const;
  Conditioning conditioning(const std::vector<std::string>& prompts, bool with_uncond) const;
  at::Tensor generate(const std::vector<std::string>& prompts, const SamplerOptions& options, at::Generator& generator,
                      ProgressBar* progress = nullptr, int64_t* nfe = nullptr) const;

  const Pipeline& pipeline() const { return pipeline_; }
  const NoiseSchedule& schedule() const { return schedule_; }

 private:
  Pipeline pipeline_;
  ClipTokenizer tokenizer_;
  NoiseSchedule schedule_;
};

}  // namespace rewardgen
