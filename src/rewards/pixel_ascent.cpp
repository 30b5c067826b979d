#include "rewards/pixel_ascent.h"

#include <torch/optim/adam.h>

#include <algorithm>

namespace rewardgen {

double chunked_reward_mean(Reward& reward, const at::Tensor& images, const std::vector<std::string>& prompts,
                           int64_t batch, bool ascend) {
  double total = 0;
  for (int64_t start = 0; start < images.size(0); start += batch) {
    const int64_t count = std::min(batch, images.size(0) - start);
    const std::vector<std::string> chunk(prompts.begin() + start, prompts.begin() + start + count);
    const at::Tensor scores = reward.score(images.narrow(0, start, count), chunk);  // [count]
    total += scores.sum().item<double>();
    if (ascend) (-scores.sum()).backward();
  }
  return total / static_cast<double>(images.size(0));
}

at::Tensor ascend_pixels(Reward& reward, const at::Tensor& images, const std::vector<std::string>& prompts, int64_t steps,
                         double lr, int64_t batch, const std::function<void(int64_t, const at::Tensor&, double)>& observe) {
  at::AutoGradMode enable(true);
  at::Tensor pixels = images.detach().clamp(-1, 1).clone().requires_grad_(true);
  torch::optim::Adam adam({pixels}, torch::optim::AdamOptions(lr));
  for (int64_t step = 0; step < steps; ++step) {
    adam.zero_grad();
    const double mean = chunked_reward_mean(reward, pixels, prompts, batch, true);
    if (observe) observe(step, pixels, mean);
    adam.step();
    at::NoGradGuard no_grad;
    pixels.clamp_(-1, 1);  // projected ascent: the rewards and the checker judge valid images only
  }
  return pixels.detach();
}

}  // namespace rewardgen
