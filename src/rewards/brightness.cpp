#include "rewards/brightness.h"

namespace rewardgen {

at::Tensor BrightnessReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name(), images, prompts);
  return images.flatten(1).mean(1);  // [B, 3·H·W] -> [B]
}

}  // namespace rewardgen
