// Pixel-space reward ascent (`rewardgen ascent`): rendered scenes asked for another colour fail the
// checker, and climbing world.compositional's gradient on their pixels makes them pass; the judged
// steps, the projection to [-1, 1], and the refusals of bad options.
#include <gtest/gtest.h>

#include "eval/reward_ascent.h"
#include "eval/world_eval.h"
#include "rewards/world_rewards.h"
#include "test_util.h"
#include "world/render.h"

namespace rewardgen {
namespace {

// Scenes drawn for `drawn`, each judged against the prompt of the same index in `asked`.
struct AskedScenes {
  at::Tensor images;  // [N, 3, 64, 64]
  std::vector<world::EvalPrompt> lines;
};
AskedScenes scenes_asked_otherwise(const std::vector<std::string>& drawn, const std::vector<std::string>& asked) {
  world::Rng rng(5);
  AskedScenes out;
  std::vector<at::Tensor> images;
  for (size_t i = 0; i < drawn.size(); ++i) {
    // Off the exact palette, as a generator's pixels are (a wide mask is flat on an exact palette colour).
    images.push_back(0.9 * world::render(world::scene_for_prompt(world::parse_prompt(drawn[i]), rng)) + 0.1 * (230 / 127.5 - 1));
    const world::Prompt prompt = world::parse_prompt(asked[i]);
    out.lines.push_back({prompt.task, asked[i]});
  }
  out.images = at::stack(images);
  return out;
}

TEST(RewardAscent, RecolouringByTheSoftCheckersGradientMakesTheCheckerPass) {
  const AskedScenes scenes = scenes_asked_otherwise({"a red circle", "a blue square", "a green triangle", "a cyan square"},
                                                    {"a blue circle", "a green square", "a red triangle", "a blue square"});
  ASSERT_EQ(judge_world_images(scenes.images, scenes.lines).accuracy.at("overall"), 0.0);
  SoftCheckerOptions soft;
  soft.log_score = true;
  soft.presence_gradient = 1;  // the sharp colour masks are flat on an object of another palette colour
  CompositionalReward reward(soft);
  RewardAscentOptions options;
  options.steps = 120;
  options.report_every = 40;
  options.batch = 3;  // two reward calls per step: the chunks must add up like one call
  const RewardAscentResult result = ascend_reward(reward, scenes.images, scenes.lines, options);
  ASSERT_EQ(result.points.size(), 4u);
  for (size_t i = 0; i < result.points.size(); ++i) EXPECT_EQ(result.points[i].step, static_cast<int64_t>(40 * i));
  EXPECT_EQ(result.points.front().accuracy.at("overall"), 0.0);
  EXPECT_EQ(result.points.back().accuracy.at("overall"), 1.0);
  EXPECT_GT(result.points.back().reward, result.points.front().reward + 4);  // log-scores: from hopeless to near 0
  EXPECT_GT(result.points.back().reward, -0.5);
  EXPECT_LE(result.images.abs().max().item<double>(), 1.0);                  // projected back every step
  // The last point judges the returned images.
  EXPECT_EQ(judge_world_images(result.images, scenes.lines).accuracy, result.points.back().accuracy);
}

TEST(RewardAscent, RefusesBadOptionsAndRewardsWithoutGradient) {
  const AskedScenes scenes = scenes_asked_otherwise({"a red circle"}, {"a blue circle"});
  CompositionalReward reward;
  auto refused = [&](RewardAscentOptions options, const std::string& needle) {
    return testing::throws_error_containing([&] { ascend_reward(reward, scenes.images, scenes.lines, options); }, needle);
  };
  RewardAscentOptions options;
  options.steps = 0;
  EXPECT_TRUE(refused(options, "steps must be >= 1, got 0"));
  options = {};
  options.lr = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(refused(options, "lr must be a finite number > 0, got inf"));
  options.lr = -0.1;
  EXPECT_TRUE(refused(options, "lr must be a finite number > 0, got -0.1"));
  options = {};
  options.report_every = 0;
  EXPECT_TRUE(refused(options, "report_every must be >= 1"));
  EXPECT_TRUE(testing::throws_error_containing(
      [&] { ascend_reward(reward, at::cat({scenes.images, scenes.images}), scenes.lines, {}); }, "one image per prompt line"));
  const std::unique_ptr<Reward> jpeg = builtin_reward_registry().make("world.jpeg", {});
  EXPECT_TRUE(testing::throws_error_containing([&] { ascend_reward(*jpeg, scenes.images, scenes.lines, {}); }, "not differentiable"));
}

}  // namespace
}  // namespace rewardgen
