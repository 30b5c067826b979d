#include "sampling/text_to_image.h"

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

at::Tensor TextToImage::guided_output(const at::Tensor& x, int64_t t, const at::Tensor& cond, const at::Tensor& uncond,
                                      const SamplerOptions& o, int64_t* nfe) const {
  const UNet2DConditionModel& unet = *pipeline_.unet;
  const int64_t B = x.size(0);
  const at::Tensor timesteps = at::full({B}, t, at::TensorOptions().dtype(at::kLong).device(x.device()));
  if (unet.config().time_cond_proj_dim > 0) {
    // LCM: guidance enters through the w embedding (w − 1, as the LCM pipeline passes it); one call.
    const at::Tensor w = at::full({B}, o.guidance_scale - 1.0, x.options());
    if (nfe) *nfe += 1;
    return unet.forward(x, timesteps, cond, guidance_scale_embedding(w, unet.config().time_cond_proj_dim).to(x.options()));
  }
  if (o.guidance_scale == 1.0 || !uncond.defined()) {
    if (nfe) *nfe += 1;
    return unet.forward(x, timesteps, cond);
  }
  // CFG: one batched call for [unconditional; conditional].
  if (nfe) *nfe += 2;
  const at::Tensor both = unet.forward(at::cat({x, x}), at::cat({timesteps, timesteps}), at::cat({uncond, cond}));
  const auto parts = both.chunk(2);
  return classifier_free_guidance(parts[0], parts[1], o.guidance_scale);
}

at::Tensor TextToImage::sample_latents(const std::vector<std::string>& prompts, const SamplerOptions& o,
                                       at::Generator& generator, ProgressBar* progress, int64_t* nfe) const {
  validate(o);
  at::NoGradGuard no_grad;
  const UNet2DConditionModel& unet = *pipeline_.unet;
  const int64_t factor = pipeline_.vae->config().downsampling_factor();
  const int64_t h = o.height > 0 ? o.height / factor : unet.config().sample_size;
  const int64_t w = o.width > 0 ? o.width / factor : unet.config().sample_size;
  const auto options = unet.conv_in->weight.options();
  const int64_t B = static_cast<int64_t>(prompts.size());
  const at::Tensor cond = encode_prompts(prompts);
  const bool needs_uncond = unet.config().time_cond_proj_dim == 0 && o.guidance_scale != 1.0;
  const at::Tensor uncond = needs_uncond ? encode_prompts(std::vector<std::string>(prompts.size(), "")) : at::Tensor();
  auto noise = [&] { return at::randn({B, unet.config().in_channels, h, w}, generator, at::kFloat).to(options); };

  const SchedulerConfig& sc = pipeline_.scheduler;
  std::vector<int64_t> timesteps;
  if (o.sampler == "lcm") timesteps = lcm_timesteps(sc, o.steps);
  else if (o.sampler == "onestep") timesteps = {sc.num_train_timesteps - 1};
  else timesteps = ddim_timesteps(sc, o.steps, o.timestep_spacing);

  at::Tensor x = noise();  // x_T ~ N(0, I)
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const int64_t t = timesteps[i];
    const at::Tensor out = guided_output(x, t, cond, uncond, o, nfe);
    if (o.sampler == "onestep") {
      x = x0_and_eps(sc.prediction_type, out, x, schedule_.alpha_bar(t)).x0;
    } else if (o.sampler == "lcm") {
      const int64_t t_prev = i + 1 < timesteps.size() ? timesteps[i + 1] : -1;
      x = lcm_step(schedule_, t, t_prev, out, x, t_prev >= 0 ? noise() : at::Tensor()).prev_sample;
    } else {
      const int64_t t_prev = o.sampler == "ddim" ? ddim_prev_timestep(sc, t, o.steps)
                                                 : (i + 1 < timesteps.size() ? timesteps[i + 1] : -1);
      const bool stochastic = o.sampler == "ddpm" || o.eta > 0;
      const at::Tensor z = stochastic ? noise() : at::Tensor();
      x = o.sampler == "ddim" ? ddim_step(schedule_, t, t_prev, out, x, o.eta, z).prev_sample
                              : ddpm_step(schedule_, t, t_prev, out, x, z).prev_sample;
    }
    if (progress) progress->update(static_cast<int64_t>(i) + 1);
  }
  return x;
}

at::Tensor TextToImage::decode(const at::Tensor& latents) const {
  return pipeline_.vae->decode(latents / pipeline_.vae->config().scaling_factor).clamp(-1, 1);
}

at::Tensor TextToImage::generate(const std::vector<std::string>& prompts, const SamplerOptions& o,
                                 at::Generator& generator, ProgressBar* progress, int64_t* nfe) const {
  at::NoGradGuard no_grad;
  return decode(sample_latents(prompts, o, generator, progress, nfe));
}

}  // namespace rewardgen
