#pragma once
// Direct reward backprop baselines on the same few-step generator and rewards as R0 (docs/r0.md):
//   ReFL (arXiv 2304.05977): a random late step k ∈ [refl_first_step, K); steps before it without
//     gradient; one UNet call with gradient; the reward on that step's decoded x̂₀;
//     loss ReLU(λ − r)·scale.
//   DRaFT-K (arXiv 2309.17400): the whole K-step rollout, gradient through its last draft_k steps
//     (draft_k = K: full DRaFT); loss −r.
// r = Σ wᵢ rᵢ, the raw (unnormalised) reward, as both papers use it; no regularizer, no CFG.
#include "methods/reward_backprop.h"

namespace rewardgen {

struct ReflConfig : RewardBackpropConfig {
  std::string variant = "refl";  // refl | draft
  int64_t refl_first_step = 2;   // ReFL: k ~ U{refl_first_step .. K−1} (0-based steps)
  double refl_lambda = 2.0;      // ReLU(λ − r)
  double refl_scale = 1e-3;
  int64_t draft_k = 1;           // DRaFT: steps with gradient, counted from the last
  ReflConfig();
};
ReflConfig read_refl_config(ConfigReader& reader);
Json refl_config_json(const ReflConfig& config);

class ReflTask : public RewardBackpropTask {
 public:
  ReflTask(const ReflConfig& config, const std::string& model_dir, const Logger& log,
           const at::Device& device = at::kCPU);
  MetricsWriter::Values train_step(StepContext& context) override;

 private:
  ReflConfig config_;
};

}  // namespace rewardgen
