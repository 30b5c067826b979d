#pragma once
// RLCM (arXiv 2404.03673; docs/rlcm.md, with corrections taken from Owen-Oertell/rlcm): PPO on a
// latent consistency model's multistep sampler as an H-step policy. Each step is the Gaussian
// x_prev ~ N(√ᾱ_prev f, (1 − ᾱ_prev) I) around the consistency output f; the last step is re-noised
// to its own timestep τ_H (its log-prob trained too: H terms) and the image is its f. Guidance goes
// in through the w embedding only: one UNet call per step, much of RLCM's speed against DDPO.
// The trainer is PpoTask (methods/ppo.h); the LCM comes from `rewardgen distill` (methods/lcd.h).
#include "methods/ppo.h"

namespace rewardgen {

struct RlcmConfig : PpoConfig {
  RlcmConfig();  // the reference code's hyper-parameters, and the world's choices (documented in docs/rlcm.md)
};
RlcmConfig read_rlcm_config(ConfigReader& reader);
Json rlcm_config_json(const RlcmConfig& config);

class RlcmTask : public PpoTask {
 public:
  RlcmTask(const RlcmConfig& config, const std::string& model_dir, const Logger& log, const at::Device& device = at::kCPU)
      : PpoTask(config, model_dir, log, "rlcm", device) {}
};

}  // namespace rewardgen
