// World evaluation: the Fréchet distance against closed forms, and a whole evaluation of a tiny
// random world pipeline (what `rewardgen eval` runs) in seconds.
#include <gtest/gtest.h>

#include "core/log.h"
#include "eval/world_eval.h"
#include "test_util.h"
#include "world_models.h"

namespace rewardgen {
namespace {

TEST(FrechetDistance, MatchesTheClosedFormsOfGaussianFits) {
  at::Generator generator = at::detail::createCPUGenerator(1);
  const at::Tensor a = at::randn({400, 3}, generator, at::kDouble);
  EXPECT_NEAR(frechet_distance(a, a), 0.0, 1e-8);
  // A shift by δ adds ‖δ‖² and nothing else.
  const at::Tensor shift = at::tensor({1.0, -2.0, 0.5}, at::kDouble);
  EXPECT_NEAR(frechet_distance(a, a + shift), 5.25, 1e-8);
  // 1-D: (μ₁ − μ₂)² + (σ₁ − σ₂)², here with exact sample moments.
  const at::Tensor x = at::tensor({-1.0, 1.0, -1.0, 1.0}, at::kDouble).unsqueeze(1);  // mean 0, var 4/3
  const at::Tensor y = 3 * x + 2;                                                     // mean 2, var 12
  const double s1 = std::sqrt(4.0 / 3), s2 = std::sqrt(12.0);
  EXPECT_NEAR(frechet_distance(x, y), 4 + (s1 - s2) * (s1 - s2), 1e-9);
  EXPECT_TRUE(testing::throws_error_containing([&] { frechet_distance(a, x); }, "same D"));
}

TEST(WorldEval, EvaluatesATinyRandomWorldPipeline) {
  testing::TempDir tmp;
  testing::write_tiny_world(tmp.file("world"), true);
  std::ostringstream quiet;
  Logger log(LogLevel::error, quiet);
  const Pipeline pipeline = load_pipeline(tmp.file("world"), {}, log);
  const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  const auto encoder = load_clip_vision(tmp.file("world") + "/image_encoder", {}, log);
  WorldEvalOptions options;
  options.sampler.steps = 2;
  options.sampler.guidance_scale = 3;
  options.batch = 4;
  options.diversity_prompts = 2;
  options.diversity_seeds = 3;
  const std::vector<world::EvalPrompt> lines = world::balanced_subset(world::eval_prompts(), 6);
  const WorldEvalResult result = evaluate_world(model, lines, options, encoder.get());
  EXPECT_EQ(result.images, 6);
  EXPECT_EQ(result.generated.sizes(), (at::IntArrayRef{6, 3, 64, 64}));
  EXPECT_EQ(result.accuracy.size(), 7u);  // six tasks and overall
  double passed = 0;
  for (bool p : result.passed) passed += p;
  EXPECT_DOUBLE_EQ(result.accuracy.at("overall"), passed / 6);
  EXPECT_DOUBLE_EQ(result.nfe_per_image, 4.0);  // 2 steps, CFG: two calls each
  EXPECT_GT(result.frechet_distance, 0.0);
  EXPECT_GT(result.diversity, 0.0);  // different seeds, different images
  EXPECT_GT(result.images_per_second, 0.0);
  const Json json = result.to_json();
  EXPECT_TRUE(json["accuracy"].contains("position"));
}

// Writes the tiny world pipeline the `cli.eval` test reads.
TEST(WorldEval, WritesTheTinyWorldFixture) {
  testing::write_tiny_world(std::string(REWARDGEN_TEST_OUTPUT) + "/tiny_world", true);
}

}  // namespace
}  // namespace rewardgen
