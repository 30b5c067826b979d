#pragma once
// Pretraining the world's AutoencoderKL (f = 4) on rendered scenes: L1 + L2 reconstruction plus
// a small KL to N(0, I) as in the LDM "KL" autoencoders; afterwards the scaling_factor is set to
// 1 / std of the latents so that diffusion sees unit-variance latents (LDM §4.3.2).
#include <memory>

#include "io/json_config.h"
#include "models/autoencoder_kl.h"
#include "train/trainer.h"
#include "world/prompts.h"

namespace rewardgen::pretrain {

struct VaePretrainConfig {
  TrainerConfig trainer;
  int64_t batch_size = 32;
  double kl_weight = 1e-6;  // on the KL summed over latent elements, as LDM
  AutoencoderKLConfig model;
  VaePretrainConfig();
};
VaePretrainConfig read_vae_pretrain_config(ConfigReader& reader);  // keys: trainer, batch_size, kl_weight, model
Json vae_pretrain_config_json(const VaePretrainConfig& config);

class VaePretrainTask : public TrainTask {
 public:
  explicit VaePretrainTask(const VaePretrainConfig& config);
  NamedTensors trainable_parameters() override;
  void save_state(TensorMap& out) const override;
  void load_state(const TensorMap& in) override;
  MetricsWriter::Values train_step(StepContext& context) override;
  std::shared_ptr<AutoencoderKL> vae() const { return vae_; }

 private:
  VaePretrainConfig config_;
  std::shared_ptr<AutoencoderKL> vae_;
  world::TrainingPrompts prompts_;
};

// Held-out quality of a VAE on the scenes of the evaluation prompts (the first `limit` lines,
// task-balanced; 0 = all 504): reconstruction of the posterior mean.
struct VaeEvaluation {
  double psnr = 0;                  // dB, on [0, 1] pixels, over all images
  double checker_accuracy = 0;      // the prompt still holds on the reconstruction
  double checker_accuracy_real = 0; // ... and on the originals (sanity: ~1)
  double latent_std = 0;            // std of the posterior means (unscaled)
  int64_t images = 0;
};
VaeEvaluation evaluate_vae(const AutoencoderKL& vae, int64_t limit = 0);
Json to_json(const VaeEvaluation& evaluation);

}  // namespace rewardgen::pretrain
