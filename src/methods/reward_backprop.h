#pragma once
// What the methods that backpropagate rewards into a few-step generator share (R0, ReFL, DRaFT):
// the generator, its rewards, task-balanced training prompts, the periodic evaluation on a fixed
// prompt subset (checker accuracy and FD, never only the trained reward), state and export.
#include <memory>
#include <string>
#include <vector>

#include "methods/generator.h"
#include "methods/method.h"
#include "methods/reward_gradients.h"
#include "models/clip.h"
#include "models/precision.h"
#include "world/prompts.h"

namespace rewardgen {

struct RewardBackpropConfig {
  TrainerConfig trainer;
  GeneratorConfig generator;
  int64_t batch_size = 16;
  std::vector<std::pair<std::string, double>> rewards;  // reward spec -> weight (see `reward --list`)
  int64_t eval_limit = 60;  // task-balanced evaluation prompts of the periodic evaluation
  std::string prompts_file; // training prompts, one per line or JSON lines {"prompt": ...}; "" = the world's, task-balanced
  // fp32 | bf16 | auto: bf16 runs each step's forward passes (generator, decoder, rewards, the CFG
  // reward's teacher call) under autocast with fp32 master weights; auto = bf16 where the CPU has
  // AMX or AVX512-BF16. fp32 by default: the recipes of docs/r0.md were measured in fp32.
  std::string precision = "fp32";
};
// Reads the shared keys (trainer, generator, batch_size, rewards, eval_limit).
void read_reward_backprop_config(ConfigReader& reader, RewardBackpropConfig& config);
Json reward_backprop_config_json(const RewardBackpropConfig& config);

// How a method scales each reward's gradient before the weighted sum (R0's regularizer 3, an
// option of DI*); the keys normalize_gradients, normalize_scope, normalize_eps.
struct GradientNormalizationConfig {
  bool enabled = false;  // normalize_gradients: ĝᵢ = gᵢ / (‖gᵢ‖ + eps); off: the raw weighted sum
  // normalize_scope, over what the norms are taken: "sample" (each sample's ‖gᵢ‖) or "batch" (the
  // batch mean of ‖gᵢ‖, so that a sample whose reward is saturated keeps its small share).
  std::string scope = "sample";
  double eps = 1e-8;  // normalize_eps
  GradientNormalization mode() const;
};
void read_gradient_normalization(ConfigReader& reader, GradientNormalizationConfig& config);
void add_gradient_normalization_json(Json& out, const GradientNormalizationConfig& config);

class RewardBackpropTask : public MethodTask {
 public:
  // Generator, rewards and the evaluation's image encoder live on `device` (fp32 master weights).
  RewardBackpropTask(const RewardBackpropConfig& config, const std::string& model_dir, const Logger& log,
                     const at::Device& device = at::kCPU);

  NamedTensors trainable_parameters() override { return generator_.trainable_parameters(); }
  std::vector<EmaPair> ema_pairs() override { return generator_.ema_pairs(); }
  void save_state(TensorMap& out) const override { generator_.save_state(out); }
  void load_state(const TensorMap& in) override { generator_.load_state(in); }
  // Checker accuracy per task and FD of the generator's own recipe (η = 0) on eval_limit prompts.
  // A grid of the evaluated images (a row per task) goes to samples/step_<N>.png.
  MetricsWriter::Values evaluate(int64_t steps_done, const std::string& samples_dir) override;
  void export_generator(const std::string& dir) const override { generator_.export_pipeline(dir); }

 protected:
  // A task-balanced batch of training prompts drawn from the run's generator.
  std::vector<std::string> sample_prompts(int64_t count, at::Generator& generator) const;
  // Mean of every reward over the batch, for the metrics row: "reward/<name>", and of its gradient's
  // norm before normalisation, "reward_grad_norm/<name>" (when the gradient was taken).
  static void add_reward_means(const RewardDirection& d, MetricsWriter::Values& values);

  RewardBackpropConfig base_config_;
  Precision precision_ = Precision::fp32;  // base_config_.precision resolved for this machine and device
  FewStepGenerator generator_;
  std::vector<WeightedReward> rewards_;
  world::TrainingPrompts prompts_;
  std::vector<std::string> file_prompts_;  // from prompts_file, when given
  std::shared_ptr<ClipVisionModel> image_encoder_;  // FD in evaluate(); null without image_encoder/
};

}  // namespace rewardgen
