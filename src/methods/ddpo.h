#pragma once
// DDPO (arXiv 2305.13301; docs/rlcm.md, with corrections taken from kvablack/ddpo-pytorch): PPO on
// the teacher's DDIM sampler as a K-step policy, η = 1 so that every step is Gaussian, classifier-
// free guidance recomputed in training (two UNet calls per step), the last step to t = 0. The baseline
// RLCM is measured against. The trainer is PpoTask (methods/ppo.h).
#include "methods/ppo.h"

namespace rewardgen {

struct DdpoConfig : PpoConfig {
  DdpoConfig();  // the reference code's hyper-parameters, and the world's choices (documented in docs/rlcm.md)
};
DdpoConfig read_ddpo_config(ConfigReader& reader);
Json ddpo_config_json(const DdpoConfig& config);

class DdpoTask : public PpoTask {
 public:
  DdpoTask(const DdpoConfig& config, const std::string& model_dir, const Logger& log, const at::Device& device = at::kCPU)
      : PpoTask(config, model_dir, log, "ddpo", device) {}
};

}  // namespace rewardgen
