#pragma once
// R0: few-step generation as regularized reward maximization (docs/r0.md). No distillation
// loss, no training images: the rewards drive a K-step generator initialised from the teacher,
// and regularizers keep its images valid. R0+ adds intermediate supervision.
#include "methods/reward_backprop.h"

namespace rewardgen {

struct R0Config : RewardBackpropConfig {
  // The teacher's classifier-free guidance as an implicit reward (weight 0: off), judged at
  // t ~ U[cfg_t_min, cfg_t_max] per sample. Weight 2 rather than 1: docs/r0.md, "Choices".
  double cfg_reward = 2.0;
  int64_t cfg_t_min = 20, cfg_t_max = 980;
  // Regularizer 3: per-reward gradient normalisation ĝ = g / (‖g‖ + eps), on by default, per
  // sample (the design). The CFG direction, when normalised, is always normalised per sample: its
  // raw scale depends on the random t.
  GradientNormalizationConfig normalization{true};
  // Regularizer 1: weight regularization λ ‖θ − θ₀‖² (LoRA: ‖ΔW‖²).
  bool weight_regularization = true;
  double weight_lambda = 20.0;
  // Regularizer 2: random η ~ U[0, eta_max] per step and per sample (off: η = 0, deterministic DDIM).
  bool random_eta = true;
  double eta_max = 1.0;
  // R0+: k* ~ U{1..K}; steps before k* without gradient; the reward on step k*'s x̂₀.
  bool intermediate_supervision = false;
  // Each reward's direction is the displacement of lookahead_steps Adam steps (step size
  // lookahead_lr) on the pixels instead of its gradient (0: the gradient, the paper's), scaled per
  // sample by what it gains with lookahead_gain_scale > 0 (PixelLookahead::gain_scale).
  PixelLookahead lookahead;
  R0Config();
};
R0Config read_r0_config(ConfigReader& reader);
Json r0_config_json(const R0Config& config);

class R0Task : public RewardBackpropTask {
 public:
  R0Task(const R0Config& config, const std::string& model_dir, const Logger& log,
         const at::Device& device = at::kCPU);
  MetricsWriter::Values train_step(StepContext& context) override;

 private:
  R0Config config_;
};

}  // namespace rewardgen
