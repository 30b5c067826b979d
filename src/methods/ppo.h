#pragma once
// PPO on a sampling policy, the one trainer DDPO and RLCM share (docs/rlcm.md, from
// the DDPO and RLCM reference code): per-prompt reward normalisation, the clipped surrogate on the
// transitions' log-probs (the mean over dimensions, which the 1e-4 clip range is calibrated to),
// and the task that alternates sampling rounds and updates. The two methods differ only in their
// policy (a DDIM sampler with CFG on the teacher, or an LCM's multistep sampler) and their
// hyper-parameters: methods/ddpo.h, methods/rlcm.h.
#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "methods/reward_backprop.h"

namespace rewardgen {

// DDPO's per-prompt stat tracking: each prompt keeps its last `buffer_size` rewards; an advantage
// is (r − mean)/(std + 1e-6) over that buffer once it holds `min_count` rewards, over the whole
// batch before. The current rewards join the buffer before the statistics are taken. std is the
// population standard deviation (numpy's default).
class PromptStatTracker {
 public:
  PromptStatTracker(int64_t buffer_size, int64_t min_count);
  // rewards [B] (one per prompt, in order) -> advantages [B], float64.
  at::Tensor advantages(const std::vector<std::string>& prompts, const at::Tensor& rewards);
  int64_t count(const std::string& prompt) const;  // rewards kept for it

  // For exact resume: every buffer under "<prefix><index>" with the prompts in a JSON list.
  void save_state(TensorMap& out, const std::string& prefix) const;
  void load_state(const TensorMap& in, const std::string& prefix);

 private:
  int64_t buffer_size_, min_count_;
  std::map<std::string, std::deque<double>> buffers_;
};

struct PpoLoss {
  at::Tensor loss;           // mean over the batch of max(−A ρ, −A clip(ρ, 1 − ε, 1 + ε)), with graph
  double clip_fraction = 0;  // share of samples with |ρ − 1| > ε
  double approx_kl = 0;      // ½ mean (log π_θ − log π_old)²
};
// log_prob, old_log_prob [B] (old without graph), advantages [B] clipped to ±advantage_clip first.
PpoLoss ppo_clipped_loss(const at::Tensor& log_prob, const at::Tensor& old_log_prob, const at::Tensor& advantages,
                         double clip_range, double advantage_clip);

struct PpoConfig : RewardBackpropConfig {
  // batch_size (inherited): trajectories per sampling round. Each round is used for inner_epochs
  // passes of updates_per_round optimizer steps; each step accumulates the loss of
  // batch_size / updates_per_round trajectories over all K of their timesteps.
  int64_t updates_per_round = 1;
  int64_t inner_epochs = 1;
  int64_t micro_batch = 16;  // trajectories per forward pass when re-scoring (memory, not maths)
  double clip_range = 1e-4;  // ε of clip(ρ, 1 − ε, 1 + ε)
  double advantage_clip = 5.0;
  bool per_prompt_stat_tracking = true;  // else the round's mean and std
  int64_t stat_buffer = 16, stat_min_count = 16;
};
void read_ppo_config(ConfigReader& reader, PpoConfig& config);  // the keys above and the shared ones
Json ppo_config_json(const PpoConfig& config);

// One sampling round (step 1 of the algorithm below), kept until its updates are done and saved
// with the checkpoints, so that a run interrupted mid-round resumes exactly.
struct PpoRound {
  std::vector<std::string> prompts;  // [N]
  at::Tensor states;                 // x_{τ_1}, …, x_{τ_K} and the last x_prev: [N, K + 1, C, h, w]
  at::Tensor log_probs;              // log π_old of each transition, mean over C·h·w [N, K]
  at::Tensor advantages;             // [N], float64, before clipping
  at::Tensor sample_order;           // this inner epoch's order of the trajectories [N]
  at::Tensor step_order;             // this inner epoch's order of the timesteps, per trajectory [N, K]
  int64_t updates_done = 0;          // over all inner epochs
  double reward_mean = 0, reward_std = 0;  // of Σ wᵢ rᵢ over the round
  std::vector<double> reward_parts;          // mean rᵢ of each reward, in the config's order
};

// PPO on the generator's K-step sampling policy (DDPO, arXiv 2305.13301 Algorithm 1 with PPO's
// clipped objective, arXiv 1707.06347 Eq. (7); RLCM, arXiv 2404.03673 §4). Every trainer step is
// one optimizer update:
//   1. a new round when the last one is used up: prompts c, trajectories x_{τ_1} → … → x_{τ_K} of the
//      policy without gradient, storing every (x_t, x_prev, log π_old); the reward r on the decoded
//      output (DDPO: the last sample; RLCM: the last step's f)
//   2. advantages A = (r − mean_c) / (std_c + 1e-6) per prompt (or over the round)
//   3. at each inner epoch, the trajectories and, per trajectory, the timesteps shuffled
//   4. for this update's trajectories and every timestep: ρ = exp(log π_θ(x_prev | x_t) − log π_old),
//      L = mean max(−A ρ, −A clip(ρ, 1 − ε, 1 + ε)) with A clipped to ±advantage_clip; gradients
//      accumulated over the timesteps, one optimizer step (the trainer clips the norm)
class PpoTask : public RewardBackpropTask {
 public:
  PpoTask(const PpoConfig& config, const std::string& model_dir, const Logger& log, const std::string& method,
          const at::Device& device = at::kCPU);
  MetricsWriter::Values train_step(StepContext& context) override;
  void save_state(TensorMap& out) const override;  // the generator, "ppo/tracker/...", "ppo/round/..."
  void load_state(const TensorMap& in) override;

 private:
  PpoRound sample_round(StepContext& context);      // steps 1–2
  void shuffle(at::Generator& generator);           // step 3
  // Step 4 for trajectories `samples` [M]: backward of their loss; the loss (detached), clip fraction
  // and approx KL as means over the update.
  PpoLoss update(const at::Tensor& samples, StepContext& context);

  PpoConfig config_;
  std::string method_;
  PromptStatTracker tracker_;
  std::optional<PpoRound> round_;
};

}  // namespace rewardgen
