#pragma once
// DI* (Diff-Instruct*, arXiv 2410.20898; docs/distar.md, with corrections taken from the SiD and SIM code):
// a one-step generator x̂₀ = g_θ(z, c) trained data-free to maximise a reward while a score-based
// divergence to the frozen reference diffusion model keeps it close to it. The divergence's
// gradient goes through an online "fake score" ψ — a copy of the reference, trained by denoising
// score matching on the generator's detached samples — and SIM's tractable loss (arXiv 2410.16794,
// Theorem 3.1). `--method distar-kl` swaps in Diff-Instruct's integral-KL gradient (arXiv 2305.18455)
// with the same fake score: the paper's ablation.
// Letters: B batch, C×h×w latent.
#include <memory>
#include <string>
#include <vector>

#include "methods/reward_backprop.h"
#include "schedulers/timesteps.h"

namespace rewardgen {

struct DistarConfig : RewardBackpropConfig {
  std::string regularizer = "score";  // score: DI*'s score divergence (SIM) | kl: Diff-Instruct's integral KL
  double alpha = 1.0;                 // the reward's scale in L_G = −α r(x̂₀) + L_div
  // The divergence's distance d(y) on y = D_ψ(x_t) − D_ref(x_t) (the two denoisers' x̂₀ at x_t):
  // pseudo_huber √(‖y‖² + c²) − c (DI*), or l2 ‖y‖² (then the loss is SiD's with its α = 1).
  std::string distance = "pseudo_huber";
  double huber_c = 1.0;  // c, in the latent's units (‖y‖ is the norm over C·h·w)
  // The reference score's classifier-free guidance w_cfg, the implicit reward (1: none).
  double reference_guidance = 3.0;
  std::string reference_model;  // the frozen reference and ψ's start; "" = the world teacher
  int64_t t_min = 20, t_max = 800;  // t ~ U{t_min..t_max} for the divergence and for ψ's loss (SiD: t ≤ 800)
  int64_t t_star = kWorldLcmFirstTimestep;  // the generator's input timestep t*: z enters as x_{t*} (the shipped LCM's first timestep)
  int64_t fake_steps = 1;           // ψ-steps per θ-step
  double fake_lr_scale = 1.0;       // ψ's lr = fake_lr_scale × the trainer's lr
  // SiD's per-sample weight 1 / mean|x̂₀ − D_ref(x_t)| (detached) on the divergence term.
  bool sid_weighting = true;
  // The reward's gradient as the paper has it (off: α ∂r/∂x), or normalised as R0 does, so that α
  // sets the reward's push per sample against the divergence's (docs/distar.md).
  GradientNormalizationConfig normalization;
  DistarConfig();
};
DistarConfig read_distar_config(ConfigReader& reader, const std::string& regularizer);
Json distar_config_json(const DistarConfig& config);

// The divergence terms of one batch, as functions of the generator's x̂₀ (with graph) and the two
// denoisers' outputs at x_t. With `regularizer` "score" (SIM's loss in the denoiser's space):
//   L_div = mean_b w_b ⟨ d′(y_b), x̂₀_b − D_ψ(x_t)_b ⟩,  y = D_ψ(x_t) − D_ref(x_t),
// whose θ-gradient flows through x̂₀ and, through x_t, through both denoisers' inputs; with "kl":
//   L_div = mean_b w_b ⟨ sg(D_ψ − D_ref)_b, x̂₀_b ⟩ (Diff-Instruct: the networks' outputs detached).
// d′(y) = y / √(‖y‖² + c²) (pseudo-Huber) or 2y (l2). w_b: SiD's weight when `sid_weight` is
// defined [B], else 1.
struct DivergenceInputs {
  at::Tensor x0;         // x̂₀ = g_θ(z, c) [B, C, h, w]
  at::Tensor fake_x0;    // D_ψ(x_t) [B, C, h, w]
  at::Tensor reference;  // D_ref(x_t), guided [B, C, h, w]
  at::Tensor weight;     // [B] detached, or undefined
};
at::Tensor divergence_loss(const DivergenceInputs& inputs, const std::string& regularizer, const std::string& distance,
                           double huber_c);

// The generator loss's two terms reach θ only through its output x̂₀ (x_t is made from it): their
// gradients at x̂₀, taken apart, say which one moves the generator and whether they pull against each
// other (`values`: output_grad_norm/divergence, output_grad_norm/reward, output_grad_cosine). Returns
// ∂(L_div + αr)/∂x̂₀, to be sent through the generator (one backward, as loss.backward() would do).
// `reward_term` may be undefined (α = 0).
at::Tensor output_gradient(const at::Tensor& x0, const at::Tensor& divergence, const at::Tensor& reward_term,
                           MetricsWriter::Values& values);

// d′(y) per sample: y / √(‖y‖² + c²) for pseudo_huber, 2y for l2 (norms over all but the batch dim).
at::Tensor distance_gradient(const at::Tensor& y, const std::string& distance, double huber_c);
// SiD's detached per-sample weight 1 / max(mean|x̂₀ − D_ref|, 1e-5) [B].
at::Tensor sid_weight(const at::Tensor& x0, const at::Tensor& reference);

// d(y) per sample [B]: √(‖y‖² + c²) − c (pseudo_huber) or ‖y‖² (l2), norms over all but the batch dim.
at::Tensor distance_value(const at::Tensor& y, const std::string& distance, double huber_c);

class DistarTask : public RewardBackpropTask {
 public:
  DistarTask(const DistarConfig& config, const std::string& model_dir, const Logger& log,
             const at::Device& device = at::kCPU);

  // Two networks, two Adams: "generator" (θ) and "fake_score" (ψ, lr × fake_lr_scale).
  std::vector<ParamGroup> parameter_groups() override;
  MetricsWriter::Values train_step(StepContext& context) override;  // generate, fake_score_step(s), generator_step
  void save_state(TensorMap& out) const override;  // the generator's, and "distar/fake_score/..."
  void load_state(const TensorMap& in) override;

  // The algorithm's parts, public for the tests.
  struct Generated {
    std::vector<std::string> prompts;
    Conditioning conditioning;  // with the empty prompt's states when the reference is guided
    at::Tensor x0;              // x̂₀ = g_θ(z, c) [B, C, h, w], with its graph when asked
  };
  Generated generate(StepContext& context, bool with_grad) const;  // this rank's shard of a global batch
  // ψ's denoising loss on sg(x̂₀) at t ~ U{t_min..t_max}, ε from `rng`.
  at::Tensor fake_score_loss(const Generated& batch, StepContext& context) const;
  // One Adam step of ψ on fake_score_loss; returns the loss.
  double fake_score_step(StepContext& context, const Generated& batch);
  // One Adam step of θ on L_G = −α r + L_div with ψ frozen; returns the metrics.
  MetricsWriter::Values generator_step(StepContext& context, const Generated& batch);
  const UNet2DConditionModel& fake_score() const { return *fake_score_; }

 private:
  DistarConfig config_;
  std::shared_ptr<UNet2DConditionModel> reference_, fake_score_;
  NoiseSchedule reference_schedule_;  // x_t and the denoisers' x̂₀ live in the reference's diffusion
};

}  // namespace rewardgen
