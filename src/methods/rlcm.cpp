#include "methods/rlcm.h"

#include "core/error.h"
#include "schedulers/timesteps.h"

namespace rewardgen {

RlcmConfig::RlcmConfig() {
  // The policy: the LCM's multistep sampler on RLCM's timestep rule, on the grid the shipped LCM was
  // distilled on (cut at 759, docs/lcd.md: 759, 579, 399, 219; the paper takes 8 steps for
  // compressibility, 16 for alignment — the world's LCM is sampled at 4), the last step re-noised to
  // its own timestep, guidance scale 3 (the world LCM's recipe; RLCM's 8 embeds w = 7 on SD).
  generator.timesteps = lcm_timesteps(SchedulerConfig{}, 4, "rlcm", kWorldLcmFirstTimestep);
  generator.sampler = "lcm";
  generator.guidance = 3.0;
  generator.last_step = "stay";
  generator.output = "sample";
  // LoRA r16/α32 on the attention projections, Adam (no weight decay) lr 1e-4, gradient norm clip 5.
  generator.lora = true;
  generator.lora_config.rank = 16;
  generator.lora_config.alpha = 32;
  trainer.lr = 1e-4;
  trainer.adam.weight_decay = 0.0;
  trainer.grad_clip = 5.0;
  trainer.max_steps = 100000;  // bounded by the job's --minutes in practice
  trainer.checkpoint_every = 25;
  trainer.eval_every = 200;
  // One optimizer step per sampling round of 32 trajectories, advantages clipped to ±10, clip range
  // 1e-4, per-prompt tracking (buffer 32, min 16).
  batch_size = 32;
  updates_per_round = 1;
  inner_epochs = 1;
  micro_batch = 32;
  clip_range = 1e-4;
  advantage_clip = 10.0;
  stat_buffer = 32;
  stat_min_count = 16;
  rewards = {{"world.compositional", 1.0}};
}

RlcmConfig read_rlcm_config(ConfigReader& r) {
  RlcmConfig c;
  read_ppo_config(r, c);
  if (c.generator.sampler != "lcm")
    throw Error(str(r.file(), ": RLCM's policy is an LCM's multistep sampler (generator.sampler lcm); DDPO trains a DDIM one"));
  return c;
}

Json rlcm_config_json(const RlcmConfig& c) { return ppo_config_json(c); }

}  // namespace rewardgen
