#pragma once
// Mean brightness: the mean pixel value of the image in [-1, 1]. A sanity-check reward with a known
// optimum and an exact gradient, on which any method must make progress in a few steps (the RLCM
// and DDPO tests train on it); not a goal in itself. Differentiable.
#include "rewards/reward.h"

namespace rewardgen {

class BrightnessReward : public Reward {
 public:
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;  // [B]
  bool differentiable() const override { return true; }
  std::string name() const override { return "brightness"; }
};

}  // namespace rewardgen
