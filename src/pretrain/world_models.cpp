#include "pretrain/world_models.h"

#include "world/render.h"

namespace rewardgen::pretrain {

TrainerConfig cosine_trainer(int64_t max_steps, double lr, int64_t warmup_steps, double min_lr_ratio) {
  TrainerConfig trainer;
  trainer.max_steps = max_steps;
  trainer.checkpoint_every = 250;
  trainer.lr = lr;
  trainer.lr_schedule = "cosine";
  trainer.warmup_steps = warmup_steps;
  trainer.min_lr_ratio = min_lr_ratio;
  return trainer;
}

AutoencoderKLConfig world_vae_config() {
  AutoencoderKLConfig config;
  // Two downsamplings: f = 4. Narrow at full resolution, where convolutions cost the most on a CPU
  // (a 32-channel first level made a batch-32 step ~5 s on 2 cores; this one is ~8x cheaper).
  config.block_out_channels = {16, 32, 64};
  config.down_block_types.assign(3, "DownEncoderBlock2D");
  config.up_block_types.assign(3, "UpDecoderBlock2D");
  config.layers_per_block = 1;
  config.norm_num_groups = 8;
  config.sample_size = world::kImageSize;
  config.scaling_factor = 1.0;  // measured after training (1 / std of the latents)
  return config;
}

ClipTextConfig world_clip_text_config(int64_t vocab_size) {
  ClipTextConfig config;
  config.vocab_size = vocab_size;
  config.max_position_embeddings = kWorldTextLength;
  config.hidden_size = 128, config.intermediate_size = 512, config.num_hidden_layers = 4;
  config.num_attention_heads = 4, config.projection_dim = 128;
  config.eos_token_id = vocab_size - 1;  // <|endoftext|> is the last token of the world vocabulary
  return config;
}

ClipVisionConfig world_clip_vision_config() {
  ClipVisionConfig config;
  config.image_size = world::kImageSize, config.patch_size = 8;
  config.hidden_size = 128, config.intermediate_size = 512, config.num_hidden_layers = 4;
  config.num_attention_heads = 4, config.projection_dim = 128;
  return config;
}

UNet2DConditionConfig world_teacher_config(int64_t cross_attention_dim) {
  UNet2DConditionConfig config;
  config.sample_size = world::kImageSize / 4;
  // 3.2 M parameters, 0.29 GFLOP per sample forward: a batch-32 training step takes ~1.4 s on one
  // loaded core (`bench unet --config bench/configs/unet_world_teacher.json`); 64/128/192 channels
  // (8.8 M, 0.93 GFLOP) took 2.5 s, too slow for the 2-hour budget.
  config.block_out_channels = {32, 64, 128};
  config.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  config.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  config.layers_per_block = {1};
  config.cross_attention_dim = {cross_attention_dim};
  config.attention_head_dim = {4};  // diffusers' name for the number of heads
  config.norm_num_groups = 32;
  return config;
}

WorldBatch sample_world_batch(const world::TrainingPrompts& prompts, int64_t count, at::Generator& generator) {
  const int64_t seed = at::randint(0, int64_t{1} << 62, {1}, generator).item<int64_t>();
  world::Rng rng(static_cast<uint64_t>(seed));
  WorldBatch batch;
  std::vector<world::Scene> scenes;
  for (int64_t i = 0; i < count; ++i) {
    world::ScenePrompt pair = world::sample_training_pair(prompts, rng);
    scenes.push_back(std::move(pair.scene));
    batch.prompts.push_back(pair.prompt.text());
    batch.parsed.push_back(std::move(pair.prompt));
  }
  batch.images = world::render_batch(scenes);
  return batch;
}

}  // namespace rewardgen::pretrain
