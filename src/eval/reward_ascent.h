#pragma once
// Is a reward's gradient a way to images the checker passes, or a way to hack the reward? Gradient
// ascent on the images themselves — every pixel a free parameter, Adam, projected back to [-1, 1]
// after each step — from a model's samples, judged by the checker along the way. A gradient method
// (R0, ReFL, DRaFT, DI*) can at best follow the reward's pixel gradient through its network; a
// reward whose pixel ascent leaves the checker's accuracy flat while its value rises is hacked at
// the pixel level, and one whose ascent raises accuracy is worth backpropagating (docs/rewards.md).
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "rewards/reward.h"
#include "world/prompts.h"

namespace rewardgen {

class ProgressBar;

struct RewardAscentOptions {
  int64_t steps = 160;        // Adam steps on the pixels
  double lr = 0.02;           // Adam's step size, in the [-1, 1] pixel scale
  int64_t report_every = 40;  // judge with the checker after every this many steps (and at 0 and the end)
  int64_t batch = 32;         // images per reward call (Adam is per pixel: the batching changes nothing)
};
void validate(const RewardAscentOptions& options);  // Error naming the bad field

struct RewardAscentPoint {
  int64_t step = 0;
  double reward = 0;                       // mean reward of the images at this step
  std::map<std::string, double> accuracy;  // the checker's, per task and "overall"
};

struct RewardAscentResult {
  std::vector<RewardAscentPoint> points;  // step 0 (the start), every report_every, and the last step
  at::Tensor images;                      // [N, 3, H, W] after the last step
};

// `images` [N, 3, H, W] in [-1, 1], image i for lines[i]; `reward` must be differentiable.
RewardAscentResult ascend_reward(Reward& reward, const at::Tensor& images, const std::vector<world::EvalPrompt>& lines,
                                 const RewardAscentOptions& options, ProgressBar* progress = nullptr);

}  // namespace rewardgen
