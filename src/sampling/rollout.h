#pragma once
// Rollouts: a K-step sampler trajectory as every method needs it (docs/design.md). One function runs
// DDIM, DDPM or LCM multistep sampling from x_T, records per step (t, t_prev, x_t, x_prev, x̂₀ or
// LCM's f, the Gaussian log-prob of the transition), and lets gradients flow through none, all, or
// some of the steps. η is given per step and per sample. `sample`/`eval` are its no-gradient case;
// R0 and DRaFT backprop through it; DDPO and RLCM store it and re-score log π_θ at the stored
// states through guided_model_output, so no method copies the guidance logic.
// Letters: B batch, C latent channels, h×w latent, L tokens, D text width, K steps.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dist/batch_shard.h"
#include "models/unet_2d_condition.h"
#include "schedulers/noise_schedule.h"

namespace rewardgen {

// The prompt conditioning of a batch: text states [B, L, D], and those of the empty prompt
// (classifier-free guidance; undefined when no guidance is used).
struct Conditioning {
  at::Tensor cond, uncond;
};

// The network output at (x_t, t) with guidance folded in. `guidance` is the guidance scale per
// sample [B] (or one value []):
//   - a UNet with time_cond_proj_dim (an LCM) takes w = guidance − 1 through its guidance
//     embedding (arXiv 2310.04378 §4.2, the LCM pipeline's convention): one call;
//   - otherwise classifier-free guidance ε̂ = ε_u + w (ε_c − ε_u) (arXiv 2207.12598 Eq. (6)), the
//     unconditional and conditional halves in one batched call; w == 1 everywhere (or no uncond): one
//     conditional call.
// t: [B] int64. `recompute`: gradient checkpointing of the call (models/recompute.h).
// Adds the network evaluations per sample to *nfe.
at::Tensor guided_model_output(const UNet2DConditionModel& unet, const at::Tensor& x, const at::Tensor& t,
                               const Conditioning& conditioning, const at::Tensor& guidance, int64_t* nfe = nullptr,
                               bool recompute = false);

// Which steps of a rollout keep their autograd graph (the others run under no-grad and their
// outputs are detached, so no gradient reaches the steps before them).
enum class GradientMode {
  none,       // sampling, PPO's rollouts
  all,        // R0, DRaFT (full)
  from_step,  // steps k .. K−1 (R0+ with k* the last: steps before it without grad)
  last_k,     // the last k steps (DRaFT-K; ReFL with k = 1 at a late step)
};

struct RolloutOptions {
  std::string sampler = "ddim";          // ddim | ddpm | lcm
  std::vector<int64_t> timesteps;        // descending, K of them
  std::vector<int64_t> prev_timesteps;   // t_prev of each step (< 0: after the last); empty: the next
                                         // timestep, and −1 after the last
  at::Tensor eta;                        // ddim: η per step and sample [K, B], per step [K], or one value; undefined = 0
                                         // (B: the global batch when sharded)
  at::Tensor guidance;                   // guidance scale [B] or []; undefined = 1 (no guidance)
  GradientMode gradient = GradientMode::none;
  int64_t gradient_k = 0;                // from_step: first step with grad; last_k: how many
  int64_t stop_after = 0;                // run only the first N steps (R0+'s k*); 0 = all K
  bool recompute = false;                // gradient checkpointing of each UNet call with grad
  bool keep_states = true;               // record x_t, x_prev, x̂₀ of every step (PPO stores them)
  // Data-parallel: x_T and the conditioning are this rank's rows; the step noise is drawn for the
  // global batch and sliced (dist/batch_shard.h), so the ranks' generators stay equal.
  BatchShard shard;
};

struct RolloutStep {
  int64_t t = 0, t_prev = 0;
  at::Tensor x_t, x_prev, x0;  // [B, C, h, w]; x0: x̂₀ (ddim/ddpm) or f (lcm)
  at::Tensor log_prob;         // log π(x_prev | x_t), mean over C·h·w [B]; undefined for a deterministic step
  bool with_grad = false;
};

struct Rollout {
  std::vector<RolloutStep> steps;  // with states when keep_states; t, t_prev and log_prob always
  at::Tensor sample;               // x_prev of the last step run       [B, C, h, w]
  at::Tensor x0;                   // x̂₀ (or f) of the last step run    [B, C, h, w]
  int64_t nfe = 0;                 // network evaluations per sample
};

// Checks the options against the schedule and batch: Error naming the bad field.
void validate(const RolloutOptions& options, const NoiseSchedule& schedule, int64_t batch);

// Runs the sampler from x_T [B, C, h, w]; noise for the stochastic steps comes from `generator`
// (CPU, then moved to x_T's device), one [B, C, h, w] draw per stochastic step in step order.
Rollout rollout(const UNet2DConditionModel& unet, const NoiseSchedule& schedule, const Conditioning& conditioning,
                const at::Tensor& x_T, const RolloutOptions& options, at::Generator& generator);

// log π_θ(x_prev | x_t) of stored transitions under the current network (PPO's ratio numerator):
// per-sample t, t_prev [B], x_t, x_prev [B, C, h, w]; eta as for ddim_transition. [B].
at::Tensor transition_log_prob(const UNet2DConditionModel& unet, const NoiseSchedule& schedule, const std::string& sampler,
                               const Conditioning& conditioning, const at::Tensor& guidance, const at::Tensor& t,
                               const at::Tensor& t_prev, const at::Tensor& x_t, const at::Tensor& x_prev,
                               const at::Tensor& eta, int64_t* nfe = nullptr);

}  // namespace rewardgen
