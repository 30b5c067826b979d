#pragma once
// A weighted sum of rewards, r = Σ_i w_i r_i, with running statistics of each r_i for the logs
// (docs/rewards.md). Built from JSON:
//   {"aesthetic:/m/aesthetic": 1.0, "jpeg_compressibility": 0.1}
//   [{"aesthetic:/m/aesthetic": 1.0}, ["jpeg_compressibility", 0.1]]      (the list keeps the order)
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "rewards/reward.h"

namespace rewardgen {

// Mean and variance of every value seen so far, merged batch by batch with Chan et al.'s update of
// Welford's (count, mean, M2) — exact in double, no catastrophic cancellation:
//   n = n_a + n_b, δ = mean_b − mean_a, mean = mean_a + δ n_b / n, M2 = M2_a + M2_b + δ² n_a n_b / n.
class RunningStats {
 public:
  void update(const at::Tensor& values);  // any shape; NaN values are errors
  int64_t count() const { return count_; }
  double mean() const { return mean_; }
  double variance() const { return count_ > 0 ? m2_ / static_cast<double>(count_) : 0.0; }  // population
  double stddev() const;

  // "<prefix>count" (int64), "<prefix>mean", "<prefix>m2" (float64 scalars): saved with a run's
  // checkpoint so that a resumed run continues the same statistics.
  void save(TensorMap& out, const std::string& prefix) const;
  void load(const TensorMap& in, const std::string& prefix, const std::string& source);

 private:
  int64_t count_ = 0;
  double mean_ = 0.0, m2_ = 0.0;
};

class CompositeReward : public Reward {
 public:
  struct Part {
    std::unique_ptr<Reward> reward;
    double weight = 1.0;
    RunningStats stats;  // of the unweighted scores r_i
    at::Tensor last;     // r_i of the last batch, [B]
  };
  explicit CompositeReward(std::vector<Part> parts);

  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;
  bool differentiable() const override;  // every part with a non-zero weight is
  std::string name() const override;     // the JSON object of specs and weights

  const std::vector<Part>& parts() const { return parts_; }
  // {"<spec>/mean", "<spec>/std", "<spec>/batch_mean"} for every part: a metrics.jsonl record.
  nlohmann::ordered_json stats_json() const;
  // Statistics of every part as "reward_stats/<spec>/{count,mean,m2}"; load is strict (same specs).
  TensorMap state() const;
  void load_state(const TensorMap& state, const std::string& source);

 private:
  std::vector<Part> parts_;
};

// Parses a JSON composite (the forms above) and makes each part through `registry`. Error naming the
// JSON text: not an object/list, a weight that is not a finite number, a list item of another shape,
// no parts, the same spec twice.
std::unique_ptr<CompositeReward> make_composite_reward(const std::string& json_text, const RewardRegistry& registry,
                                                       const RewardContext& context);

}  // namespace rewardgen
