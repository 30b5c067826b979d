// World evaluation: the Fréchet distance against closed forms, and a whole evaluation of a tiny
// random world pipeline (what `rewardgen eval` runs) in seconds.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/log.h"
#include "core/progress.h"
#include "eval/world_eval.h"
#include "sampling/pipeline.h"
#include "test_util.h"
#include "world/render.h"
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

TEST(SpearmanCorrelation, RanksWithTiesAndMatchesHandComputedValues) {
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 3, 4}, {0.4, 0.3, 0.2, -7}), -1.0);
  // Monotone transforms change nothing: only ranks count.
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 5, 2, 9}, {1, 125, 8, 729}), 1.0);
  // No ties: 1 − 6 Σd² / (n(n² − 1)); ranks (1,2,3,4,5) vs (2,1,4,3,5): Σd² = 4, ρ = 1 − 24/120 = 0.8.
  EXPECT_NEAR(spearman_correlation({1, 2, 3, 4, 5}, {20, 10, 40, 30, 50}), 0.8, 1e-12);
  // Ties take their mean rank: a = (1, 2.5, 2.5, 4), b = (1, 2, 3, 4);
  // centred a = (−1.5, 0, 0, 1.5), b = (−1.5, −0.5, 0.5, 1.5): ρ = 4.5 / √(4.5 · 5).
  EXPECT_NEAR(spearman_correlation({0.1, 0.7, 0.7, 0.9}, {1, 2, 3, 4}), 4.5 / std::sqrt(4.5 * 5.0), 1e-12);
  // A 0/1 verdict against a score (the checker case).
  EXPECT_NEAR(spearman_correlation({0, 0, 1, 1}, {1, 2, 3, 4}), 2.0 / std::sqrt(5.0), 1e-12);
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(testing::throws_error_containing([] { spearman_correlation({1, 2}, {1, 2, 3}); }, "same length"));
}

// A tiny random world pipeline, written to a temporary folder and loaded, and the evaluation
// options the tests share: 2 DDIM steps with CFG 3, batches of 4.
struct TinyWorld {
  testing::TempDir tmp;
  std::ostringstream quiet;
  Logger log{LogLevel::error, quiet};
  Pipeline pipeline;
  TinyWorld() {
    testing::write_tiny_world(tmp.file("world"), true);
    pipeline = load_pipeline(tmp.file("world"), {}, log);
  }
  TextToImage model() const { return TextToImage(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir)); }
  static WorldEvalOptions options() {
    WorldEvalOptions o;
    o.sampler.steps = 2;
    o.sampler.guidance_scale = 3;
    o.batch = 4;
    return o;
  }
};

TEST(WorldEval, EvaluatesATinyRandomWorldPipeline) {
  TinyWorld world;
  const TextToImage model = world.model();
  const auto encoder = load_clip_vision(world.tmp.file("world") + "/image_encoder", {}, world.log);
  WorldEvalOptions options = TinyWorld::options();
  options.diversity_prompts = 2;
  options.diversity_seeds = 3;
  options.rewards.push_back(builtin_reward_registry().make("world.compositional", {}));
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
  ASSERT_EQ(result.clauses_passed.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_GE(result.clauses_passed[i], 0.0);
    EXPECT_LE(result.clauses_passed[i], 1.0);
    if (result.passed[i]) {
      EXPECT_DOUBLE_EQ(result.clauses_passed[i], 1.0);
    }
  }
  // The reward is scored on exactly the evaluated images.
  const RewardSummary& reward = result.rewards.at("world.compositional");
  ASSERT_EQ(reward.scores.size(), 6u);
  auto scorer = builtin_reward_registry().make("world.compositional", {});
  std::vector<std::string> prompts;
  for (const auto& line : lines) prompts.push_back(line.text);
  const at::Tensor direct = scorer->score(result.generated, prompts);
  double sum = 0;
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(reward.scores[static_cast<size_t>(i)], direct[i].item<double>(), 1e-5);
    sum += reward.scores[static_cast<size_t>(i)];
  }
  EXPECT_NEAR(reward.mean, sum / 6, 1e-12);
  const Json json = result.to_json();
  EXPECT_TRUE(json["accuracy"].contains("position"));
  EXPECT_EQ(json.contains("position_reversed"), result.position_reversed >= 0);
  EXPECT_TRUE(json["rewards"]["world.compositional"].contains("spearman_vs_clauses"));
}

// The position control: scenes drawn for a relation pass their own prompt and never the reversed
// one; scenes drawn for the reversed relation the other way round; lines of other tasks count for
// neither, and without a position line there is no control.
TEST(WorldEval, PositionControlJudgesTheImagesAgainstTheReversedRelation) {
  const std::vector<std::pair<std::string, std::string>> drawn_asked = {
      {"a red circle to the left of a blue square", "a red circle to the left of a blue square"},
      {"a green triangle above a yellow circle", "a green triangle above a yellow circle"},
      {"a cyan square to the left of a purple triangle", "a cyan square to the right of a purple triangle"},
      {"a blue circle above a red square", "a blue circle below a red square"},
      {"a purple circle", "a purple circle"}};
  world::Rng rng(11);
  std::vector<at::Tensor> images;
  std::vector<world::EvalPrompt> lines;
  for (const auto& [drawn, asked] : drawn_asked) {
    images.push_back(world::render(world::scene_for_prompt(world::parse_prompt(drawn), rng)));
    lines.push_back({world::parse_prompt(asked).task, asked});
  }
  const WorldVerdicts verdicts = judge_world_images(at::stack(images), lines);
  EXPECT_DOUBLE_EQ(verdicts.accuracy.at("position"), 0.5);
  EXPECT_DOUBLE_EQ(verdicts.position_reversed, 0.5);  // the two drawn the other way round
  EXPECT_DOUBLE_EQ(verdicts.accuracy.at("single_object"), 1.0);
  const std::vector<world::EvalPrompt> first_two(lines.begin(), lines.begin() + 2);
  EXPECT_DOUBLE_EQ(judge_world_images(at::stack(images).narrow(0, 0, 2), first_two).position_reversed, 0.0);
  const std::vector<world::EvalPrompt> reversed_only(lines.begin() + 2, lines.begin() + 4);
  EXPECT_DOUBLE_EQ(judge_world_images(at::stack(images).narrow(0, 2, 2), reversed_only).position_reversed, 1.0);
  EXPECT_LT(judge_world_images(at::stack(images).narrow(0, 4, 1), {lines[4]}).position_reversed, 0.0);
}

// The relation control on hand-placed scenes: a red circle left of a blue square, the same two
// objects swapped round (the drawing turned with the word: each object moved 24 px), the same
// picture twice (the word ignored: nothing moved), and an empty second picture (neither).
TEST(WorldEval, RelationControlSeparatesADrawingThatTurnsFromOneThatStays) {
  const auto scene = [](float red_x, float blue_x) {
    world::Scene s;
    s.objects = {{world::Shape::circle, world::Colour::red, world::Size::small, red_x, 32, 7},
                 {world::Shape::square, world::Colour::blue, world::Size::small, blue_x, 32, 7}};
    return world::render(s);
  };
  const at::Tensor asked = scene(20, 44), turned = scene(44, 20), empty = world::render(world::Scene{});
  const world::Prompt prompt = world::parse_prompt("a red circle to the left of a blue square");
  const RelationControl control =
      relation_control(at::stack({asked, asked, asked}), at::stack({turned, asked, empty}), {prompt, prompt, prompt});
  EXPECT_EQ(control.lines, 3);
  EXPECT_DOUBLE_EQ(control.followed, 1.0 / 3);
  EXPECT_DOUBLE_EQ(control.ignored, 1.0 / 3);
  EXPECT_EQ(control.objects_matched, 4);          // two objects in each of the first two pairs
  EXPECT_NEAR(control.median_move, 12.0, 1e-3);   // moves 0, 0, 24, 24: the mean of the middle two
  EXPECT_DOUBLE_EQ(control.moved_under_3px, 0.5);
  // One pair that turned: everything moved 24 px.
  const RelationControl turned_only = relation_control(asked.unsqueeze(0), turned.unsqueeze(0), {prompt});
  EXPECT_DOUBLE_EQ(turned_only.followed, 1.0);
  EXPECT_DOUBLE_EQ(turned_only.ignored, 0.0);
  EXPECT_NEAR(turned_only.median_move, 24.0, 1e-3);
  EXPECT_DOUBLE_EQ(turned_only.moved_under_3px, 0.0);
  // Nothing detected: no move to report.
  const RelationControl none = relation_control(empty.unsqueeze(0), empty.unsqueeze(0), {prompt});
  EXPECT_EQ(none.objects_matched, 0);
  EXPECT_LT(none.median_move, 0.0);
  EXPECT_TRUE(none.to_json()["median_move_px"].is_null());
  EXPECT_TRUE(testing::throws_error_containing(
      [&] { relation_control(asked.unsqueeze(0), turned.unsqueeze(0), {world::parse_prompt("a red circle")}); },
      "takes position prompts"));
  EXPECT_TRUE(testing::throws_error_containing(
      [&] { relation_control(at::stack({asked, asked}), turned.unsqueeze(0), {prompt, prompt}); }, "one reversed image per prompt"));
  EXPECT_TRUE(testing::throws_error_containing(
      [&] { relation_control(asked.unsqueeze(0).narrow(0, 0, 0), asked.unsqueeze(0).narrow(0, 0, 0), {}); }, "for 0 prompts"));
}

// The control's second images are exactly what an evaluation of the reversed prompts draws (the same
// noise, line for line), and only the position lines are sampled again.
TEST(WorldEval, RelationControlSamplesTheReversedPromptsFromTheSameNoise) {
  const TinyWorld world;
  const TextToImage model = world.model();
  WorldEvalOptions options = TinyWorld::options();
  options.relation_control = true;
  // Lines 0-5: one a task (position is line 4); 6-7 two more position lines.
  std::vector<world::EvalPrompt> lines = world::balanced_subset(world::eval_prompts(), 6);
  ASSERT_EQ(lines[4].task, world::Task::position);
  lines.push_back({world::Task::position, "a red circle above a blue square"});
  lines.push_back({world::Task::position, "a green triangle to the right of a yellow circle"});
  // Batches of 4: lines 0-3 hold no position line, lines 4-7 are sampled again. The progress bar
  // counts to the 8 images and the 4 of the control.
  EXPECT_EQ(world_eval_sampled_images(lines, options), 12);
  std::ostringstream progress_text;
  ProgressBar progress("eval", world_eval_sampled_images(lines, options), 0, {ProgressMode::plain, &progress_text});
  const WorldEvalResult result = evaluate_world(model, lines, options, nullptr, &progress);
  EXPECT_NE(progress_text.str().find("eval: 12/12"), std::string::npos) << progress_text.str();
  ASSERT_TRUE(result.relation_control.has_value());
  EXPECT_EQ(result.relation_control->lines, 3);
  EXPECT_EQ(result.reversed_lines, (std::vector<size_t>{4, 6, 7}));
  ASSERT_EQ(result.reversed_generated.size(0), 3);
  EXPECT_TRUE(result.to_json().contains("relation_control"));

  std::vector<world::EvalPrompt> reversed = lines;
  for (size_t i : result.reversed_lines) {
    world::Prompt p = world::parse_prompt(lines[i].text);
    p.relation = world::opposite(p.relation);
    reversed[i].text = p.text();
  }
  options.relation_control = false;
  EXPECT_EQ(world_eval_sampled_images(lines, options), 8);
  const WorldEvalResult direct = evaluate_world(model, reversed, options, nullptr);
  EXPECT_FALSE(direct.relation_control.has_value());
  for (size_t k = 0; k < result.reversed_lines.size(); ++k) {
    const int64_t line = static_cast<int64_t>(result.reversed_lines[k]);
    EXPECT_TRUE(at::equal(result.reversed_generated[static_cast<int64_t>(k)], direct.generated[line])) << "line " << line;
    // The text changed the picture (the tiny UNet reads its prompt), so the equality is not vacuous.
    EXPECT_FALSE(at::equal(result.generated[line], direct.generated[line])) << "line " << line;
  }
  // Without a position line there is no control.
  options.relation_control = true;
  const std::vector<world::EvalPrompt> no_position(lines.begin(), lines.begin() + 4);
  EXPECT_FALSE(evaluate_world(model, no_position, options, nullptr).relation_control.has_value());
}

// Writes the tiny world pipeline the `cli.eval` test reads.
TEST(WorldEval, WritesTheTinyWorldFixture) {
  testing::write_tiny_world(std::string(REWARDGEN_TEST_OUTPUT) + "/tiny_world", true);
}

}  // namespace
}  // namespace rewardgen
