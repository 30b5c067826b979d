#include "eval/reward_ascent.h"

#include <torch/optim/adam.h>

#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "eval/world_eval.h"

namespace rewardgen {
namespace {

// Mean reward of `pixels` (one chunk of `batch` at a time); with `ascend` also each chunk's
// gradient of −reward accumulated into pixels.grad().
double reward_pass(Reward& reward, const at::Tensor& pixels, const std::vector<std::string>& prompts, int64_t batch,
                   bool ascend) {
  double total = 0;
  for (int64_t start = 0; start < pixels.size(0); start += batch) {
    const int64_t count = std::min(batch, pixels.size(0) - start);
    const std::vector<std::string> chunk(prompts.begin() + start, prompts.begin() + start + count);
    const at::Tensor scores = reward.score(pixels.narrow(0, start, count), chunk);  // [count]
    if (!at::isfinite(scores).all().item<bool>())
      throw Error(str("reward '", reward.name(), "' gave a NaN or infinite score during the ascent"));
    total += scores.sum().item<double>();
    if (ascend) (-scores.sum()).backward();
  }
  return total / static_cast<double>(pixels.size(0));
}

}  // namespace

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
  at::Tensor pixels = images.detach().to(at::kFloat).clamp(-1, 1).clone().requires_grad_(true);
  torch::optim::Adam adam({pixels}, torch::optim::AdamOptions(options.lr));
  RewardAscentResult result;
  auto judge = [&](int64_t step, double reward_mean) {
    at::NoGradGuard no_grad;
    // The checker reads CPU images (the pixels live where the reward runs).
    result.points.push_back({step, reward_mean, judge_world_images(pixels.detach().to(at::kCPU), lines).accuracy});
  };
  for (int64_t step = 0; step < options.steps; ++step) {
    adam.zero_grad();
    const double mean = reward_pass(reward, pixels, prompts, options.batch, true);
    if (step % options.report_every == 0) judge(step, mean);  // the images this step's reward was read on
    adam.step();
    {
      at::NoGradGuard no_grad;
      pixels.clamp_(-1, 1);  // projected ascent: the checker and the rewards judge valid images only
    }
    if (progress) progress->update(step + 1);
  }
  {
    at::NoGradGuard no_grad;
    judge(options.steps, reward_pass(reward, pixels, prompts, options.batch, false));
  }
  result.images = pixels.detach();
  return result;
}

}  // namespace rewardgen
