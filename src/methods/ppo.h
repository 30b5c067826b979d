#pragma once
// The pieces of PPO on a sampling policy that DDPO and RLCM share (design §7.2, §7.3 and §7.7, from
// the DDPO and RLCM reference code): per-prompt reward normalisation and the clipped surrogate on
// the transitions' log-probs (the mean over dimensions, which the 1e-4 clip range is calibrated to).
#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

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

}  // namespace rewardgen
