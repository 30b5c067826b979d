#include "eval/reward_ascent.h"

#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "eval/world_eval.h"
#include "rewards/pixel_ascent.h"

namespace rewardgen {

void validate(const RewardAscentOptions& o) {
  if (o.steps < 1) throw Error(str("ascent: steps must be >= 1, got ", o.steps));
  if (!std::isfinite(o.lr) || o.lr <= 0) throw Error(str("ascent: lr must be a finite number > 0, got ", o.lr));
  if (o.report_every < 1) throw Error(str("ascent: report_every must be >= 1, got ", o.report_every));
  if (o.batch < 1) throw Error(str("ascent: batch must be >= 1, got ", o.batch));
}

RewardAscentResult ascend_reward(Reward& reward, const at::Tensor& images, const std::vector<world::EvalPrompt>& lines,
                                 const RewardAscentOptions& options, ProgressBar* progress) {
  validate(options);
  if (!reward.differentiable()) throw Error(str("ascent: reward '", reward.name(), "' is not differentiable"));
  if (images.dim() != 4 || images.size(0) != static_cast<int64_t>(lines.size()) || lines.empty())
    throw Error(str("ascent: needs one image per prompt line, got ", images.sizes(), " for ", lines.size(), " lines"));
  std::vector<std::string> prompts;
  for (const world::EvalPrompt& line : lines) prompts.push_back(line.text);
  RewardAscentResult result;
  auto judge = [&](int64_t step, const at::Tensor& pixels, double reward_mean) {
    at::NoGradGuard no_grad;
    // The checker reads CPU images (the pixels live where the reward runs).
    result.points.push_back({step, reward_mean, judge_world_images(pixels.detach().to(at::kCPU), lines).accuracy});
  };
  auto finite = [&](double reward_mean) {
    if (!std::isfinite(reward_mean)) throw Error(str("reward '", reward.name(), "' gave a NaN or infinite score during the ascent"));
    return reward_mean;
  };
  const at::Tensor pixels = ascend_pixels(reward, images.to(at::kFloat), prompts, options.steps, options.lr, options.batch,
                                          [&](int64_t step, const at::Tensor& now, double reward_mean) {
                                            finite(reward_mean);
                                            if (step % options.report_every == 0) judge(step, now, reward_mean);  // before its update
                                            if (progress) progress->update(step + 1);
                                          });
  {
    at::NoGradGuard no_grad;
    judge(options.steps, pixels, finite(chunked_reward_mean(reward, pixels, prompts, options.batch, false)));
  }
  result.images = pixels;
  return result;
}

}  // namespace rewardgen
