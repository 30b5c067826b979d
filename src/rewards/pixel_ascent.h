#pragma once
// Projected gradient ascent of a reward on the pixels themselves: every pixel a free parameter,
// Adam, clamped back to [-1, 1] after each step. `rewardgen ascent` (eval/reward_ascent.h) judges
// the images along the way; R0's lookahead (methods/reward_gradients.h) takes the displacement.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rewards/reward.h"

namespace rewardgen {

// The reward's mean over `images` [N, ...], `batch` images per call; with `ascend` each call's
// gradient of −reward is accumulated into images.grad(). Samples are independent, so the chunking
// changes nothing but memory.
double chunked_reward_mean(Reward& reward, const at::Tensor& images, const std::vector<std::string>& prompts,
                           int64_t batch, bool ascend);

// `steps` Adam steps (step size `lr`) of `reward` on a copy of `images` clamped to [-1, 1], in the
// images' dtype; returns the pixels after the last step, without graph. `observe(step, pixels,
// mean)`, when given, sees each step's pixels and their mean reward before that step's update.
at::Tensor ascend_pixels(Reward& reward, const at::Tensor& images, const std::vector<std::string>& prompts, int64_t steps,
                         double lr, int64_t batch,
                         const std::function<void(int64_t, const at::Tensor&, double)>& observe = {});

}  // namespace rewardgen
