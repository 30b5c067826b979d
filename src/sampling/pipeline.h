#pragma once
// A Stable-Diffusion-style pipeline: its models and its scheduler config (with the sampling
// recipe an exported generator carries), loaded from and saved to a diffusers pipeline folder
// (model_index.json with unet/, vae/, text_encoder/, tokenizer/, scheduler/). The components
// themselves load through models/diffusers_io.h.
#include <memory>
#include <string>

#include "models/diffusers_io.h"

namespace rewardgen {

// A Stable-Diffusion-style pipeline folder.
struct Pipeline {
  std::shared_ptr<UNet2DConditionModel> unet;
  std::shared_ptr<AutoencoderKL> vae;
  std::shared_ptr<ClipTextModel> text_encoder;
  std::string tokenizer_dir;  // tokenizer/ (vocab.json + merges.txt), read by text/
  SchedulerConfig scheduler;
};
// Scaled latents [B, C, h, w] -> images [B, 3, H, W] through the VAE decoder, not clamped (and
// differentiable): what a reward on a gradient path must see.
at::Tensor decode_latents(const AutoencoderKL& vae, const at::Tensor& latents);

Pipeline load_pipeline(const std::string& dir, const LoadOptions& options, const Logger& log);
// Writes model_index.json and the component folders; the tokenizer folder is copied from `tokenizer_dir`.
void save_pipeline(const std::string& dir, const Pipeline& pipeline, at::ScalarType dtype = at::ScalarType::Undefined);

}  // namespace rewardgen
