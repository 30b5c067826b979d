#include "methods/ddpo.h"

#include "core/error.h"
#include "schedulers/timesteps.h"

namespace rewardgen {

DdpoConfig::DdpoConfig() {
  // The policy: the teacher's DDIM sampler with η = 1. The reference code samples 50 steps; the world
  // takes 20 (951, 901, …, 1, "leading" as SD's scheduler) — at 40 UNet calls per trajectory a round
  // is already ten times RLCM's. CFG 3, the world teacher's best scale (the reference uses 5).
  generator.timesteps = ddim_timesteps(SchedulerConfig{}, 20, "leading");
  generator.sampler = "ddim";
  generator.eta = 1.0;
  generator.guidance = 3.0;
  generator.last_step = "zero";  // prev_timestep clamped at 0: σ > 0 on the last step too
  generator.output = "sample";   // the reward judges the decoded final sample
  // LoRA rank 4 (diffusers' attention processors: α = rank), AdamW lr 3e-4, β (0.9, 0.999), wd 1e-4, clip 1.
  generator.lora = true;
  generator.lora_config.rank = 4;
  generator.lora_config.alpha = 4;
  trainer.lr = 3e-4;
  trainer.adam.weight_decay = 1e-4;
  trainer.grad_clip = 1.0;
  trainer.max_steps = 100000;  // bounded by the job's --minutes in practice
  trainer.checkpoint_every = 10;
  trainer.eval_every = 50;
  // A round of 32 trajectories, two updates of 16 (the reference: 256 per epoch, 4 updates), one
  // inner epoch, clip range 1e-4, advantages clipped to ±5, per-prompt tracking (buffer 16, min 16).
  batch_size = 32;
  updates_per_round = 2;
  inner_epochs = 1;
  micro_batch = 16;
  clip_range = 1e-4;
  advantage_clip = 5.0;
  stat_buffer = 16;
  stat_min_count = 16;
  rewards = {{"world.compositional", 1.0}};
}

DdpoConfig read_ddpo_config(ConfigReader& r) {
  DdpoConfig c;
  read_ppo_config(r, c);
  if (c.generator.sampler != "ddim")
    throw Error(str(r.file(), ": DDPO's policy is the DDIM sampler (generator.sampler ddim); RLCM trains an LCM's"));
  if (c.generator.eta <= 0)
    throw Error(str(r.file(), ": DDPO needs generator.eta > 0 (got ", c.generator.eta, "): with η = 0 DDIM is deterministic and has no log-prob"));
  return c;
}

Json ddpo_config_json(const DdpoConfig& c) { return ppo_config_json(c); }

}  // namespace rewardgen
