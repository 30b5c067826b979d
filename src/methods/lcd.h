#pragma once
// LCD: latent consistency distillation (arXiv 2310.04378 Algorithm 1; docs/lcd.md, with the
// corrections taken from diffusers' train_lcm_distill_sd_wds.py). The student is the teacher's
// UNet with a guidance embedding (time_cond_proj_dim); each step noises world latents to
// t_{n+k}, takes one deterministic guided DDIM step of the frozen teacher to t_n, and pulls the
// student's consistency output at t_{n+k} toward the EMA target's at t_n. The exported LCM samples
// in 1–8 steps with one UNet call per step (the guidance scale goes in through the embedding).
#include <memory>
#include <string>
#include <vector>

#include "methods/method.h"
#include "models/clip.h"
#include "models/precision.h"
#include "sampling/pipeline.h"
#include "sampling/text_to_image.h"
#include "sampling/prompt_states.h"
#include "schedulers/timesteps.h"
#include "world/prompts.h"

namespace rewardgen {

struct LcdConfig {
  TrainerConfig trainer;
  int64_t batch_size = 32;
  // w ~ U[w_min, w_max] per sample in the LCM form x̂₀ = x̂₀_c + w (x̂₀_c − x̂₀_u), i.e. classifier-free
  // guidance of scale w + 1. The LCM paper uses [5, 15] on SD; the world teacher is best at CFG 3
  // and over-saturates by CFG 8, hence a lower range (docs/lcd.md).
  double w_min = 1.0, w_max = 4.0;
  int64_t skip = 20;  // k: the teacher's step from t_{n+k} to t_n; the grid is k−1, 2k−1, …, T−1
  std::string loss = "l2";  // l2 | huber (elementwise √(d² + c²) − c)
  double huber_c = 0.001;
  double ema_decay = 0.95;  // the target network θ⁻ (exported unless export_ema_decay > 0)
  // 0: export and evaluate θ⁻, as diffusers' script does. In (0, 1): a second, slower EMA of the
  // student θ (consistency models evaluate such an average, arXiv 2303.01469 §6) is exported and
  // evaluated, and the periodic evaluation also scores θ⁻ under "target/" so one run compares both.
  double export_ema_decay = 0.0;
  int64_t time_cond_proj_dim = 256;
  std::string cond_proj_init = "zero";  // zero: the student starts as the teacher exactly | random
  // The exported recipe (and the periodic evaluation's): LCM multistep sampling.
  int64_t sample_steps = 4;
  double sample_guidance = 3.0;             // guidance scale; the embedding gets w = scale − 1
  std::string timestep_rule = "diffusers";  // diffusers (999, 759, 499, 259) | rlcm (999, 759, 519, 279)
  // ≥ 0: the top of the grid, for training (t_{n+k} ≤ it) and for the sampler, which starts there from
  // pure noise (the recipe's first_timestep: lcm_timesteps' cut grid). −1: T − 1, the LCM paper's. 759:
  // at t = 999 this schedule keeps √ᾱ = 0.068 of the image and x̂₀ amplifies the network's error 15×;
  // distilled and sampled from 759 the world LCM reads 43.5 / 52.6 / 55.2 % at 1 / 2 / 4 steps against
  // 30.2 / 41.1 / 45.6 % (docs/lcd.md, "Eighth run").
  int64_t first_timestep = kWorldLcmFirstTimestep;
  std::vector<int64_t> eval_steps{1, 2, 4};  // step counts of the periodic evaluation
  int64_t eval_limit = 60;
  std::string precision = "fp32";  // fp32 | bf16 | auto: forward passes under autocast, fp32 master weights
  LcdConfig();
};
LcdConfig read_lcd_config(ConfigReader& reader);
Json lcd_config_json(const LcdConfig& config);

// The student built from a teacher UNet: the same config with time_cond_proj_dim, the teacher's
// weights, the new guidance projection zero or randomly (PyTorch Linear's U(±1/√in)) initialised.
std::shared_ptr<UNet2DConditionModel> make_lcm_student(const UNet2DConditionModel& teacher, int64_t time_cond_proj_dim,
                                                       bool zero_init, at::Generator& generator);

// The consistency distillation loss of one batch (Algorithm 1, lines 4–7). Every input is given so
// that tests can check it against a hand computation.
struct LcdBatch {
  at::Tensor latents;          // x₀ [B, C, h, w] (scaled)
  at::Tensor noise;            // ε  [B, C, h, w]
  at::Tensor t_start, t_end;   // t_{n+k}, t_n per sample [B] int64
  at::Tensor w;                // LCM-form guidance per sample [B]
  Conditioning conditioning;   // with the empty prompt's states (the teacher's guidance)
};
struct LcdLoss {
  at::Tensor loss;                      // scalar, with graph into the student
  at::Tensor student, target, x_prev;   // f_θ(x_{t_{n+k}}), f_θ⁻(x̂_{t_n}), the teacher's x̂_{t_n}
};
LcdLoss lcd_loss(const UNet2DConditionModel& student, const UNet2DConditionModel& target, const UNet2DConditionModel& teacher,
                 const NoiseSchedule& schedule, const LcdBatch& batch, const std::string& loss, double huber_c);

class LcdTask : public MethodTask {
 public:
  LcdTask(const LcdConfig& config, const std::string& model_dir, const Logger& log,
          const at::Device& device = at::kCPU);

  NamedTensors trainable_parameters() override;
  std::vector<EmaPair> ema_pairs() override;
  MetricsWriter::Values train_step(StepContext& context) override;
  // The target LCM's checker accuracy (and FD) at each of eval_steps; the recipe's step count
  // unprefixed, the others as "steps<N>/accuracy/…".
  MetricsWriter::Values evaluate(int64_t steps_done, const std::string& samples_dir) override;
  void save_state(TensorMap& out) const override;  // "lcd/student/...", "lcd/target/...", "lcd/export_ema/..."
  void load_state(const TensorMap& in) override;
  void export_generator(const std::string& dir) const override;  // the target LCM, or the slow EMA

 private:
  Pipeline with_unet(std::shared_ptr<UNet2DConditionModel> unet) const;  // the base pipeline, the LCM recipe
  int64_t grid_size() const;  // the grid entries t_{n+k} training draws from (≤ first_timestep when set)
  SamplerOptions sampler(const SchedulerConfig& scheduler, int64_t steps) const;  // the recipe's sampler at `steps`
  const std::shared_ptr<UNet2DConditionModel>& exported() const { return export_ema_ ? export_ema_ : target_; }
  MetricsWriter::Values evaluate_unet(std::shared_ptr<UNet2DConditionModel> unet, const std::string& prefix, int64_t steps_done,
                                      const std::string& samples_dir) const;

  LcdConfig config_;
  std::string model_dir_;
  at::Device device_;
  Precision precision_;
  Pipeline base_;  // frozen teacher, VAE, text encoder
  std::shared_ptr<UNet2DConditionModel> student_, target_, export_ema_;  // export_ema_ only when export_ema_decay > 0
  NoiseSchedule schedule_;
  std::unique_ptr<PromptStates> prompt_states_;
  world::TrainingPrompts prompts_;
  std::shared_ptr<ClipVisionModel> image_encoder_;
};

}  // namespace rewardgen
