#include "sampling/text_to_image.h"

#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "schedulers/steps.h"
#include "schedulers/timesteps.h"

namespace rewardgen {

void validate(const SamplerOptions& o) {
  if (o.sampler != "ddim" && o.sampler != "ddpm" && o.sampler != "lcm" && o.sampler != "onestep")
    throw Error(str("unknown sampler '", o.sampler, "' (allowed: ddim, ddpm, lcm, onestep)"));
  if (o.steps < 1) throw Error(str("--steps must be >= 1, got ", o.steps));
  if (o.guidance_scale < 0) throw Error(str("the guidance scale must be >= 0, got ", o.guidance_scale));
  if (o.eta < 0) throw Error(str("eta must be >= 0, got ", o.eta));
  if (o.height < 0 || o.width < 0) throw Error("height and width must be >= 0");
  if (!std::isfinite(o.guidance_scale) || o.guidance_scale > 1e3)
    throw Error(str("the guidance scale must be finite and <= 1000, got ", o.guidance_scale));
  if (!std::isfinite(o.eta) || o.eta > 1e3) throw Error(str("eta must be finite and <= 1000, got ", o.eta));
  if (o.output != "sample" && o.output != "x0") throw Error(str("unknown sampler output '", o.output, "' (allowed: sample, x0)"));
  if (o.timestep_spacing == "rlcm" && o.sampler != "lcm")
    throw Error(str("timestep spacing 'rlcm' is an LCM rule; the ", o.sampler, " sampler takes leading, trailing or linspace"));
  if (o.first_timestep < -1) throw Error(str("first_timestep must be -1 (none) or a timestep, got ", o.first_timestep));
  if (o.first_timestep >= 0 && o.sampler != "lcm")
    throw Error(str("first_timestep (", o.first_timestep, ") cuts the LCM's grid; the ", o.sampler, " sampler has none"));
  if (o.sampler == "onestep" && !o.timesteps.empty())
    throw Error("the onestep sampler always starts at the last timestep; for another, give the ddim or lcm sampler one timestep");
  if (!o.timesteps.empty() && static_cast<int64_t>(o.timesteps.size()) != o.steps)
    throw Error(str("the sampler has ", o.timesteps.size(), " explicit timesteps for ", o.steps, " steps"));
}

SamplerOptions sampler_options(const SamplerRecipe& r) {
  SamplerOptions o;
  if (r.sampler.empty()) return o;
  o.sampler = r.sampler;
  o.steps = r.steps;
  o.timesteps = r.timesteps;
  o.timestep_spacing = r.timestep_spacing;
  o.first_timestep = r.first_timestep;
  o.eta = r.eta;
  o.guidance_scale = r.guidance_scale;
  o.output = r.output;
  return o;
}

SamplerRecipe sampler_recipe(const SamplerOptions& o) {
  return {o.sampler, o.steps, o.timesteps, o.timestep_spacing, o.eta, o.guidance_scale, o.output, o.first_timestep};
}

RolloutOptions rollout_options(const SamplerOptions& o, const SchedulerConfig& sc) {
  validate(o);
  // validate() knows no schedule: at or above T the cut would keep the whole grid, silently.
  check_first_timestep(o.first_timestep, sc.num_train_timesteps, "the sampler's first_timestep");
  RolloutOptions r;
  r.sampler = o.sampler == "onestep" ? "ddim" : o.sampler;
  if (o.sampler == "onestep") {
    r.timesteps = {sc.num_train_timesteps - 1};
  } else if (!o.timesteps.empty()) {
    r.timesteps = o.timesteps;  // t_prev: the next one, −1 after the last
  } else if (o.sampler == "lcm") {
    r.timesteps = lcm_timesteps(sc, o.steps, o.timestep_spacing == "rlcm" ? "rlcm" : "diffusers", o.first_timestep);
  } else {
    r.timesteps = ddim_timesteps(sc, o.steps, o.timestep_spacing);
    if (o.sampler == "ddim")  // DDIM's chain: t − ⌊T/n⌋ (diffusers), which "linspace" does not land on
      for (const int64_t t : r.timesteps) r.prev_timesteps.push_back(ddim_prev_timestep(sc, t, o.steps));
  }
  if (o.sampler == "ddim" && o.eta > 0) r.eta = at::scalar_tensor(o.eta, at::kDouble);
  r.guidance = at::scalar_tensor(o.guidance_scale, at::kDouble);
  return r;
}

TextToImage::TextToImage(Pipeline pipeline, ClipTokenizer tokenizer)
    : pipeline_(std::move(pipeline)), tokenizer_(std::move(tokenizer)), schedule_(make_noise_schedule(pipeline_.scheduler)) {
  if (!pipeline_.unet || !pipeline_.vae || !pipeline_.text_encoder) throw Error("TextToImage needs a unet, vae and text encoder");
  if (tokenizer_.vocab_size() > pipeline_.text_encoder->config().vocab_size)
    throw Error(str("the tokenizer has ", tokenizer_.vocab_size(), " tokens but the text encoder only ",
                    pipeline_.text_encoder->config().vocab_size));
}

at::Tensor TextToImage::encode_prompts(const std::vector<std::string>& prompts) const {
  at::NoGradGuard no_grad;
  const int64_t length = pipeline_.text_encoder->config().max_position_embeddings;
  const at::Tensor ids = tokenizer_.encode_batch(prompts, length).to(pipeline_.unet->conv_in->weight.device());
  return pipeline_.text_encoder->forward(ids).last_hidden_state;  // [B, L, D]
}

Conditioning TextToImage::conditioning(const std::vector<std::string>& prompts, bool with_uncond) const {
  Conditioning c;
  c.cond = encode_prompts(prompts);
  if (with_uncond) c.uncond = encode_prompts(std::vector<std::string>(prompts.size(), ""));
  return c;
}

at::Tensor TextToImage::sample_latents(const std::vector<std::string>& prompts, const SamplerOptions& o,
                                       at::Generator& generator, ProgressBar* progress, int64_t* nfe) const {
  validate(o);
  at::NoGradGuard no_grad;
  const UNet2DConditionModel& unet = *pipeline_.unet;
  const int64_t factor = pipeline_.vae->config().downsampling_factor();
  const int64_t h = o.height > 0 ? o.height / factor : unet.config().sample_size;
  const int64_t w = o.width > 0 ? o.width / factor : unet.config().sample_size;
  const int64_t B = static_cast<int64_t>(prompts.size());
  const bool needs_uncond = unet.config().time_cond_proj_dim == 0 && o.guidance_scale != 1.0;
  const Conditioning c = conditioning(prompts, needs_uncond);
  // x_T ~ N(0, I), drawn on the CPU so that seeds give the same images on every device. The
  // sampler's state stays fp32 whatever the UNet computes in (guided_model_output casts).
  const at::Tensor x_T = at::randn({B, unet.config().in_channels, h, w}, generator, at::kFloat).to(unet.conv_in->weight.device());
  RolloutOptions ro = rollout_options(o, pipeline_.scheduler);
  ro.keep_states = false;
  const Rollout r = rollout(unet, schedule_, c, x_T, ro, generator);
  if (progress) progress->update(static_cast<int64_t>(ro.timesteps.size()));
  if (nfe) *nfe += r.nfe;
  return o.output == "x0" || o.sampler == "onestep" ? r.x0 : r.sample;
}

at::Tensor TextToImage::decode(const at::Tensor& latents) const { return decode_unclamped(latents).clamp(-1, 1); }

at::Tensor TextToImage::decode_unclamped(const at::Tensor& latents) const { return decode_latents(*pipeline_.vae, latents); }

at::Tensor TextToImage::generate(const std::vector<std::string>& prompts, const SamplerOptions& o,
                                 at::Generator& generator, ProgressBar* progress, int64_t* nfe) const {
  at::NoGradGuard no_grad;
  return decode(sample_latents(prompts, o, generator, progress, nfe));
}

}  // namespace rewardgen
