#pragma once
// The few-step generator that every post-training method trains: a copy of the starting model's
// UNet — all of its weights, or LoRA adapters on its attention projections — run as a K-step
// sampler from pure noise (DDIM for R0, ReFL, DRaFT and DDPO; LCM multistep for RLCM), beside the
// frozen VAE, text encoder and teacher. It keeps θ₀ (the starting weights) for R0's weight
// regulariser and exports a pipeline folder whose scheduler config carries its sampling recipe.
// Letters: B batch, C latent channels, h×w latent, H×W pixels, K steps.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/json_config.h"
#include "models/diffusers_io.h"
#include "sampling/pipeline.h"
#include "sampling/prompt_states.h"
#include "models/lora.h"
#include "sampling/rollout.h"
#include "sampling/text_to_image.h"
#include "train/trainer.h"

namespace rewardgen {

class Logger;

struct GeneratorConfig {
  std::vector<int64_t> timesteps{999, 749, 499, 249};  // descending; K = their number
  std::string sampler = "ddim";  // ddim | lcm (the UNet must then have a guidance embedding)
  // ddim: classifier-free guidance scale (≠ 1: two UNet calls per step); lcm: the scale whose
  // w = scale − 1 goes through the guidance embedding (one call).
  double guidance = 1.0;
  double eta = 0.0;  // ddim: η of every step (R0 draws its own per step and sample in training)
  // Where the last transition goes: "end" (ᾱ_final, as `sample` does), "zero" (t = 0, DDPO: σ > 0
  // on every step), "stay" (its own timestep, RLCM: the last action re-noised to τ_K, lcm only).
  std::string last_step = "end";
  // What the generator outputs: "x0" (the last step's x̂₀: R0's generators) or "sample" (the last
  // step's x_prev: DDPO). An LCM always outputs the last step's consistency output f.
  std::string output = "x0";
  bool lora = false;                                   // false: full fine-tune
  LoraConfig lora_config{8, 8};                        // rank, alpha, targets (attention projections)
  double ema_decay = 0.0;                              // EMA of the trained weights (0: none; export the weights); full fine-tune only
  bool recompute = false;                              // gradient checkpointing of each UNet call
};
void read_generator_config(ConfigReader& reader, GeneratorConfig& config);  // keys as the members; lora_rank, lora_alpha
Json generator_config_json(const GeneratorConfig& config);

// The frozen teacher, as long as the handle lives. With LoRA it is the trained UNet itself with its
// adapters bypassed (one copy of the weights, not two: 3.4 GB less for SD1.5 in fp32); the full
// fine-tune keeps a separate frozen copy. Hold it only around no-gradient teacher calls.
class TeacherHandle {
 public:
  const UNet2DConditionModel& unet() const { return *unet_; }

 private:
  friend class FewStepGenerator;
  TeacherHandle(const UNet2DConditionModel& unet, std::unique_ptr<LoraBypass> bypass)
      : unet_(&unet), bypass_(std::move(bypass)) {}
  const UNet2DConditionModel* unet_;
  std::unique_ptr<LoraBypass> bypass_;  // null: a separate copy
};

class FewStepGenerator {
 public:
  // Loads the pipeline folder `model_dir` (diffusers layout): the UNet to train, its frozen copy
  // (teacher and θ₀; with LoRA the same UNet, its adapters bypassed), VAE and text encoder, all on
  // `device` in fp32 (the master weights; bf16 comes from autocast).
  FewStepGenerator(const GeneratorConfig& config, const std::string& model_dir, const Logger& log,
                   const at::Device& device = at::kCPU);

  int64_t steps() const { return static_cast<int64_t>(config_.timesteps.size()); }
  const at::Device& device() const { return device_; }
  const GeneratorConfig& config() const { return config_; }

  NamedTensors trainable_parameters() const;
  // Σ ‖θ − θ₀‖² over the trained tensors (LoRA: Σ ‖B A‖² over the adapters' updates, i.e. the
  // adapters' distance from the teacher).
  at::Tensor distance_to_initial() const;

  Conditioning conditioning(const std::vector<std::string>& prompts, bool with_uncond) const;  // cached
  at::Tensor initial_noise(int64_t batch, at::Generator& generator) const;                     // x_T [B, C, h, w] on device()
  bool needs_uncond() const;  // the rollout runs classifier-free guidance (ddim with guidance ≠ 1)
  // The K-step rollout of the trained UNet with the config's sampler, guidance and last step, η
  // [K, B] and the gradient mode given; `keep_states` records x_t, x_prev, x̂₀ of every step.
  // Data-parallel: x_T and the conditioning are `shard`'s rows, η is the global batch's.
  Rollout rollout(const Conditioning& conditioning, const at::Tensor& x_T, const at::Tensor& eta, GradientMode gradient,
                  int64_t gradient_k, int64_t stop_after, at::Generator& generator, bool keep_states = false,
                  const BatchShard& shard = {}) const;
  // The rollout options of the training policy (sampler, timesteps with their t_prev, guidance).
  RolloutOptions policy_options() const;
  // The latents the generator outputs from a rollout (the config's output; f for an LCM).
  const at::Tensor& output_latents(const Rollout& rollout) const;
  const UNet2DConditionModel& unet() const { return *unet_; }
  at::Tensor decode(const at::Tensor& latents) const;  // unclamped, differentiable: [B, 3, H, W]

  TeacherHandle teacher() const;
  const NoiseSchedule& schedule() const { return schedule_; }

  void save_state(TensorMap& out) const;  // "generator/unet/..." or "generator/lora/...", "generator/ema/..."
  void load_state(const TensorMap& in);
  std::vector<EmaPair> ema_pairs();
  // The pipeline that samples as trained: the (EMA) UNet with LoRA merged, the recipe in its
  // scheduler config (DDIM on `timesteps`, η = 0, no guidance, output x̂₀).
  void export_pipeline(const std::string& dir) const;
  // The pipeline with the UNet as trained so far (EMA if kept; LoRA attached), and its recipe.
  Pipeline sampling_pipeline() const;
  SamplerOptions sampler_options() const;
  const std::string& tokenizer_dir() const { return base_.tokenizer_dir; }
  const std::string& model_dir() const { return model_dir_; }

 private:
  GeneratorConfig config_;
  std::string model_dir_;
  at::Device device_;
  Pipeline base_;  // frozen vae, text encoder, tokenizer, scheduler
  std::shared_ptr<UNet2DConditionModel> unet_, teacher_, ema_unet_;
  LoraAdapters adapters_;
  std::unique_ptr<at::Generator> lora_generator_;
  std::map<std::string, at::Tensor> initial_;  // θ₀ of the trained tensors (full fine-tune)
  NoiseSchedule schedule_;
  std::unique_ptr<PromptStates> prompt_states_;
};

}  // namespace rewardgen
