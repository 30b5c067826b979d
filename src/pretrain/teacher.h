#pragma once
// Pretraining the world's teacher: a UNet2DConditionModel in the VAE's 16×16×4 latent space,
// conditioned on the world CLIP's text hidden states, trained by denoising on the 1000-step
// scaled-linear schedule (DDPM) with 10% prompt dropout for classifier-free guidance, Min-SNR-γ
// loss weighting (Hang et al., arXiv 2303.09556) and an EMA of the weights, which is what is
// evaluated and exported. Every `eval_every` steps the EMA teacher samples a task-balanced subset
// of the evaluation prompts and the checker's accuracy goes into metrics.jsonl: accuracy against
// wall-clock, as docs/world.md shows.
#include <map>
#include <memory>

#include "io/json_config.h"
#include "models/diffusers_io.h"
#include "sampling/pipeline.h"
#include "sampling/text_to_image.h"
#include "train/trainer.h"
#include "world/prompts.h"

namespace rewardgen {
class Logger;
}

namespace rewardgen::pretrain {

struct TeacherPretrainConfig {
  TrainerConfig trainer;
  int64_t batch_size = 32;
  double prompt_dropout = 0.1;  // probability of the empty prompt (CFG's unconditional model)
  double snr_gamma = 5.0;       // Min-SNR-γ; 0 = plain MSE
  double ema_decay = 0.999;
  std::string prediction_type = "epsilon";  // epsilon | v_prediction | sample
  int64_t eval_limit = 60;      // evaluation lines (task-balanced)
  int64_t eval_steps = 25;      // DDIM steps
  double eval_guidance = 4.0;   // CFG weight
  // A pipeline folder whose unet/ starts the weights (and the EMA) instead of a random draw: a
  // shipped teacher trained further. Its config must equal `model`. Empty: random initial weights.
  // Read only when a run starts: a resumed run's checkpoint holds the weights, so the folder may
  // have moved since.
  std::string init;
  // How often each task's prompts are drawn for training (relative; docs/world.md). Equal: balanced.
  world::TaskWeights task_weights{1, 1, 1, 1, 1, 1};
  UNet2DConditionConfig model;
  TeacherPretrainConfig();
};
TeacherPretrainConfig read_teacher_pretrain_config(ConfigReader& reader);
Json teacher_pretrain_config_json(const TeacherPretrainConfig& config);
// Error unless `init` is empty or a pipeline folder with unet/config.json: checked before a run that
// starts from it writes anything (not on resume, which does not read it).
void check_teacher_init(const TeacherPretrainConfig& config);

class TeacherPretrainTask : public TrainTask {
 public:
  // `world_dir` holds the trained vae/, text_encoder/ and tokenizer/ (frozen here). `from_init`:
  // start from config.init's UNet (a run starting over); false when a checkpoint will be resumed.
  TeacherPretrainTask(const TeacherPretrainConfig& config, const std::string& world_dir, const Logger& log,
                      bool from_init = true);
  NamedTensors trainable_parameters() override;
  void save_state(TensorMap& out) const override;
  void load_state(const TensorMap& in) override;
  MetricsWriter::Values train_step(StepContext& context) override;
  std::vector<EmaPair> ema_pairs() override;
  MetricsWriter::Values evaluate(int64_t steps_done, const std::string& samples_dir) override;  // the EMA teacher's checker accuracy on eval_limit prompts

  // The pipeline with the EMA UNet (for evaluation and export).
  Pipeline ema_pipeline() const;
  const std::string& tokenizer_dir() const { return tokenizer_dir_; }

 private:
  at::Tensor text_states(const std::vector<std::string>& prompts) const;  // cached [B, L, D]
  void load_init_weights(const Logger& log);  // config_.init's unet/ into unet_

  TeacherPretrainConfig config_;
  std::string tokenizer_dir_;
  Pipeline frozen_;  // vae + text encoder
  std::shared_ptr<UNet2DConditionModel> unet_, ema_unet_;
  NoiseSchedule schedule_;
  world::TrainingPrompts prompts_;
  std::map<std::string, at::Tensor> text_cache_;  // prompt -> [L, D], every training prompt and ""
};

}  // namespace rewardgen::pretrain
