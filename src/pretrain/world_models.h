#pragma once
// The embedded world's models (docs/world.md): the configurations of its tiny VAE, CLIP towers and
// teacher UNet — the real architecture classes at small sizes — and the batches of rendered
// scenes they are trained and evaluated on. `rewardgen pretrain` builds them; models/world/ ships
// them in diffusers layout.
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "models/autoencoder_kl.h"
#include "models/clip.h"
#include "models/unet_2d_condition.h"
#include "train/trainer.h"
#include "world/prompts.h"

namespace rewardgen::pretrain {

constexpr int64_t kWorldTextLength = 16;  // tokens: start + at most 14 words + end

// The pretraining runs' schedule: linear warmup, then cosine down to min_lr_ratio·lr;
// checkpoints every 250 steps.
TrainerConfig cosine_trainer(int64_t max_steps, double lr, int64_t warmup_steps, double min_lr_ratio);

AutoencoderKLConfig world_vae_config();                   // f = 4: 64×64×3 -> 16×16×4
ClipTextConfig world_clip_text_config(int64_t vocab_size);
ClipVisionConfig world_clip_vision_config();              // 64×64 input, 8×8 patches
UNet2DConditionConfig world_teacher_config(int64_t cross_attention_dim);  // on 16×16×4 latents

// Training pairs: a scene seed drawn from `generator` (the run's only randomness), then world
// prompts and scenes from it.
struct WorldBatch {
  at::Tensor images;  // [B, 3, 64, 64] in [-1, 1]
  std::vector<std::string> prompts;
  std::vector<world::Prompt> parsed;
};
WorldBatch sample_world_batch(const world::TrainingPrompts& prompts, int64_t count, at::Generator& generator);

}  // namespace rewardgen::pretrain
