// The embedded world: renderer determinism, grammar round trip, the held-out prompt set, and the
// checker's accuracy on rendered ground truth (clean, noisy, blurred) and on wrong prompts.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "core/paths.h"
#include "io/atomic_file.h"
#include "test_util.h"
#include "world/checker.h"
#include "world/prompts.h"
#include "world/render.h"

using namespace rewardgen;
using namespace rewardgen::world;
using rewardgen::testing::throws_error_containing;

TEST(WorldRender, SameSeedSameImageAndDifferentSeedsDiffer) {
  const TrainingPrompts prompts;
  Rng a(7), b(7), c(8);
  const at::Tensor first = render(sample_training_pair(prompts, a).scene);
  EXPECT_TRUE(at::equal(first, render(sample_training_pair(prompts, b).scene)));
  EXPECT_FALSE(at::equal(first, render(sample_training_pair(prompts, c).scene)));
  EXPECT_EQ(first.sizes(), (at::IntArrayRef{3, 64, 64}));
  EXPECT_LE(first.abs().max().item<float>(), 1.0f);
}

TEST(WorldRender, ObjectInteriorHasItsPaletteColourAndEdgesAreBlended) {
  Scene scene;
  scene.background.base = {240, 240, 240};
  scene.objects.push_back({Shape::square, Colour::blue, Size::large, 20.0f, 20.0f, 10.3f});
  const at::Tensor rgb = (render(scene) + 1) * 127.5;
  const Rgb blue = palette_rgb(Colour::blue);
  EXPECT_NEAR(rgb[0][20][20].item<float>(), blue.r, 1e-3);
  EXPECT_NEAR(rgb[2][20][20].item<float>(), blue.b, 1e-3);
  EXPECT_NEAR(rgb[0][50][50].item<float>(), 240.0f, 1e-3);
  // The square's left edge at x = 9.7: of pixel column 9's sub-sample columns (9.125, 9.375,
  // 9.625, 9.875) only the last is inside, so the pixel is 1/4 blue, 3/4 background.
  const float edge = rgb[0][20][9].item<float>();
  EXPECT_NEAR(edge, 0.25f * blue.r + 0.75f * 240.0f, 1e-3);
}

TEST(WorldRender, TriangleIsUprightWithHalfTheBoxFilled) {
  Object triangle{Shape::triangle, Colour::red, Size::large, 32, 32, 10};
  EXPECT_TRUE(inside(triangle, 32, 23));     // near the apex
  EXPECT_FALSE(inside(triangle, 25, 24));    // beside the apex
  EXPECT_TRUE(inside(triangle, 23, 41.5f));  // base corner
  int filled = 0;
  for (int y = 0; y < 200; ++y)
    for (int x = 0; x < 200; ++x) filled += inside(triangle, 22 + (x + 0.5f) / 10, 22 + (y + 0.5f) / 10);
  EXPECT_NEAR(filled / 40000.0, 0.5, 0.01);
}

TEST(WorldPrompts, EveryPromptRoundTripsThroughTheParser) {
  std::map<Task, size_t> expected = {{Task::single_object, 18}, {Task::two_object, 216}, {Task::counting, 54},
                                     {Task::colors, 90},        {Task::position, 1224},  {Task::color_attr, 1224}};
  for (Task task : kTasks) {
    const std::vector<Prompt> prompts = all_prompts(task);
    EXPECT_EQ(prompts.size(), expected[task]) << name(task);
    std::set<std::string> texts;
    for (const Prompt& prompt : prompts) {
      const Prompt parsed = parse_prompt(prompt.text());
      EXPECT_EQ(parsed.task, task) << prompt.text();
      EXPECT_EQ(parsed.text(), prompt.text());
      EXPECT_EQ(parsed.objects.size(), prompt.objects.size());
      for (size_t i = 0; i < parsed.objects.size(); ++i) EXPECT_TRUE(parsed.objects[i] == prompt.objects[i]);
      EXPECT_EQ(parsed.count, prompt.count);
      EXPECT_EQ(parsed.relation, prompt.relation);
      texts.insert(prompt.text());
    }
    EXPECT_EQ(texts.size(), prompts.size()) << "duplicate texts in " << name(task);
  }
}

TEST(WorldPrompts, ParsesClausesOfHandWrittenPrompts) {
  const Prompt position = parse_prompt("  A red circle to the LEFT of a blue square ");
  EXPECT_EQ(position.task, Task::position);
  EXPECT_EQ(position.relation, Relation::left_of);
  EXPECT_EQ(position.objects[0].shape, Shape::circle);
  EXPECT_EQ(*position.objects[1].colour, Colour::blue);
  const Prompt counting = parse_prompt("four purple triangles");
  EXPECT_EQ(counting.task, Task::counting);
  EXPECT_EQ(counting.count, 4);
  const Prompt attr = parse_prompt("a large yellow square and a small purple circle");
  EXPECT_EQ(attr.task, Task::color_attr);
  EXPECT_EQ(*attr.objects[1].size, Size::small);
  EXPECT_EQ(parse_prompt("a circle").objects[0].colour, std::nullopt);  // free colour is allowed
}

TEST(WorldPrompts, RejectsPromptsOutsideTheGrammarNamingTheWord) {
  EXPECT_TRUE(throws_error_containing([] { parse_prompt("a red dog"); }, "word 3 'dog'"));
  EXPECT_TRUE(throws_error_containing([] { parse_prompt("three red circle"); }, "expected a plural shape"));
  EXPECT_TRUE(throws_error_containing([] { parse_prompt("a red circle near a blue square"); }, "'near'"));
  EXPECT_TRUE(throws_error_containing([] { parse_prompt("a red circle and a red circle"); }, "same object twice"));
  EXPECT_TRUE(throws_error_containing([] { parse_prompt(""); }, "expected 'a' at the end"));
  EXPECT_TRUE(throws_error_containing([] { parse_prompt("a red circle above"); }, "expected 'a' at the end"));
}

TEST(WorldPrompts, EvalSetIsBalancedDisjointFromTrainingAndShipped) {
  const std::vector<EvalPrompt> eval = eval_prompts();
  ASSERT_EQ(eval.size(), 504u);
  std::map<Task, int> per_task;
  std::set<std::string> eval_texts;
  for (const EvalPrompt& line : eval) {
    ++per_task[line.task];
    eval_texts.insert(line.text);
    EXPECT_EQ(parse_prompt(line.text).task, line.task);
  }
  for (Task task : kTasks) EXPECT_EQ(per_task[task], kEvalLinesPerTask) << name(task);
  EXPECT_GE(eval_texts.size(), 250u);
  const TrainingPrompts training;
  std::set<std::string> words_in_training;
  for (Task task : kTasks) {
    EXPECT_FALSE(training.of(task).empty());
    for (const Prompt& prompt : training.of(task)) {
      EXPECT_EQ(eval_texts.count(prompt.text()), 0u) << prompt.text();
      for (const ObjectSpec& spec : prompt.objects) words_in_training.insert(spec.text());
    }
  }
  // Every colour-shape pair is still seen in training (in some task), so held-out prompts test
  // composition, not unseen words.
  for (Shape shape : kShapes)
    for (Colour colour : kColours)
      EXPECT_EQ(words_in_training.count(ObjectSpec{shape, colour, std::nullopt}.text()), 1u);
  // The shipped file is exactly the generated set, and reads back.
  const std::string shipped = shipped_file("world/eval_prompts.jsonl");
  EXPECT_EQ(read_text_file(shipped), eval_prompts_jsonl(eval));
  const std::vector<EvalPrompt> read = read_prompts_file(shipped);
  ASSERT_EQ(read.size(), eval.size());
  EXPECT_EQ(read[100].text, eval[100].text);
  const std::vector<EvalPrompt> subset = balanced_subset(eval, 12);
  ASSERT_EQ(subset.size(), 12u);
  EXPECT_EQ(subset[2].task, Task::two_object);
}

TEST(WorldPrompts, ScenesHoldWhatThePromptSays) {
  const TrainingPrompts prompts;
  Rng rng(3);
  for (int i = 0; i < 300; ++i) {
    const ScenePrompt pair = sample_training_pair(prompts, rng);
    const size_t expected = pair.prompt.task == Task::counting ? pair.prompt.count : pair.prompt.objects.size();
    ASSERT_EQ(pair.scene.objects.size(), expected) << pair.prompt.text();
    for (const Object& object : pair.scene.objects) {
      EXPECT_GE(object.cx - object.half_extent, 0.0f);
      EXPECT_LE(object.cx + object.half_extent, 64.0f);
    }
  }
}

TEST(WorldPrompts, TrainingTasksAreDrawnInProportionToTheirWeights) {
  // Equal weights (any value) draw what the unweighted sampler drew, prompt for prompt.
  const TrainingPrompts plain, equal({2, 2, 2, 2, 2, 2});
  Rng a(11), b(11);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(plain.sample(a).text(), equal.sample(b).text()) << i;
  // Weight 0 is never drawn; 1 : 3 gives a quarter and three quarters (4000 draws: ±3 %).
  const TrainingPrompts weighted({1, 0, 0, 0, 3, 0});
  Rng rng(5);
  std::map<Task, int> drawn;
  for (int i = 0; i < 4000; ++i) ++drawn[weighted.sample(rng).task];
  EXPECT_EQ(drawn.size(), 2u);
  EXPECT_NEAR(drawn[Task::single_object] / 4000.0, 0.25, 0.03);
  EXPECT_NEAR(drawn[Task::position] / 4000.0, 0.75, 0.03);
  const TrainingPrompts last_only({0, 0, 0, 0, 0, 1});
  for (int i = 0; i < 50; ++i) ASSERT_EQ(last_only.sample(rng).task, Task::color_attr);
  EXPECT_TRUE(throws_error_containing([] { TrainingPrompts({1, -1, 1, 1, 1, 1}); }, "task weight of two_object is -1"));
  EXPECT_TRUE(throws_error_containing([] { TrainingPrompts({1, 1, 1, NAN, 1, 1}); }, "task weight of colors is nan"));
  EXPECT_TRUE(throws_error_containing([] { TrainingPrompts({0, 0, 0, 0, 0, 0}); }, "task weights are all 0"));
}

namespace {

at::Tensor blur3(const at::Tensor& image) {  // 3×3 box blur, edges replicated
  const at::Tensor padded = at::replication_pad2d(image.unsqueeze(0), {1, 1, 1, 1});
  return at::avg_pool2d(padded, {3, 3}, {1, 1}).squeeze(0);
}

// Checker accuracy per task over `per_task` scenes of training and eval prompts, after `corrupt`.
template <typename Corrupt>
std::map<Task, double> checker_accuracy(int per_task, Corrupt corrupt, bool wrong_prompt = false) {
  std::map<Task, double> accuracy;
  int failures_shown = 0;
  Rng rng(11);
  at::Generator noise = at::detail::createCPUGenerator(5);
  const std::vector<EvalPrompt> eval = eval_prompts();
  for (Task task : kTasks) {
    const std::vector<Prompt> all = all_prompts(task);
    int correct = 0;
    for (int i = 0; i < per_task; ++i) {
      const Prompt prompt = all[static_cast<size_t>(rng.below(static_cast<int64_t>(all.size())))];
      const at::Tensor image = corrupt(render(scene_for_prompt(prompt, rng)), noise);
      Prompt asked = prompt;
      if (wrong_prompt) {  // another colour for the first object, or one more for counting
        if (task == Task::counting) asked.count = prompt.count == 4 ? 2 : prompt.count + 1;
        else asked.objects[0].colour = kColours[(static_cast<size_t>(*prompt.objects[0].colour) + 1) % kColours.size()];
        if (task != Task::counting && asked.objects.size() == 2 && asked.objects[0].shape == asked.objects[1].shape &&
            asked.objects[0].colour == asked.objects[1].colour)
          asked.objects[0].colour = kColours[(static_cast<size_t>(*asked.objects[0].colour) + 1) % kColours.size()];
      }
      const CheckResult result = check(image, asked);
      correct += wrong_prompt ? !result.passed : result.passed;
      if (result.passed == wrong_prompt && failures_shown++ < 3)
        std::cout << "checker miss (counted above) '" << asked.text() << "' for a scene of '" << prompt.text() << "':\n"
                      << result.explain();
    }
    accuracy[task] = static_cast<double>(correct) / per_task;
  }
  return accuracy;
}

}  // namespace

TEST(WorldChecker, AtLeast99PercentOnRenderedGroundTruth) {
  const auto accuracy = checker_accuracy(200, [](const at::Tensor& image, at::Generator&) { return image; });
  for (const auto& [task, value] : accuracy) EXPECT_GE(value, 0.99) << name(task);
}

TEST(WorldChecker, RejectsScenesThatDoNotMatchThePrompt) {
  const auto accuracy = checker_accuracy(100, [](const at::Tensor& image, at::Generator&) { return image; }, true);
  for (const auto& [task, value] : accuracy) EXPECT_GE(value, 0.99) << name(task);
}

TEST(WorldChecker, RobustToNoiseAndBlur) {
  const auto noisy = checker_accuracy(100, [](const at::Tensor& image, at::Generator& generator) {
    return (image + 0.08 * at::randn(image.sizes(), generator, at::kFloat)).clamp(-1, 1);
  });
  for (const auto& [task, value] : noisy) EXPECT_GE(value, 0.97) << "noise, " << name(task);
  const auto blurred = checker_accuracy(100, [](const at::Tensor& image, at::Generator&) { return blur3(image); });
  for (const auto& [task, value] : blurred) EXPECT_GE(value, 0.97) << "blur, " << name(task);
  // Both at once is harsher than generated images get (small objects lose their corners).
  const auto both = checker_accuracy(100, [](const at::Tensor& image, at::Generator& generator) {
    return (blur3(image) + 0.08 * at::randn(image.sizes(), generator, at::kFloat)).clamp(-1, 1);
  });
  for (const auto& [task, value] : both) EXPECT_GE(value, 0.9) << "blur and noise, " << name(task);
}

TEST(WorldChecker, ExplainsItsDecision) {
  Scene scene;
  scene.objects.push_back({Shape::circle, Colour::red, Size::large, 16, 32, 11});
  scene.objects.push_back({Shape::square, Colour::blue, Size::small, 48, 32, 6});
  const at::Tensor image = render(scene);
  const CheckResult pass = check(image, parse_prompt("a red circle to the left of a blue square"));
  EXPECT_TRUE(pass.passed) << pass.explain();
  ASSERT_EQ(pass.detections.size(), 2u);
  EXPECT_NEAR(pass.detections[0].cx, 16.0f, 0.3f);
  const CheckResult fail = check(image, parse_prompt("a red circle to the right of a blue square"));
  EXPECT_FALSE(fail.passed);
  EXPECT_NE(fail.explain().find("FAIL the red circle is to the right of the blue square"), std::string::npos)
      << fail.explain();
  EXPECT_FALSE(check(image, parse_prompt("two red circles")).passed);
  EXPECT_TRUE(check(image, parse_prompt("a large red circle and a small blue square")).passed);
  EXPECT_FALSE(check(image, parse_prompt("a small red circle and a small blue square")).passed);
  EXPECT_TRUE(throws_error_containing([&] { detect_objects(image.unsqueeze(0)); }, "[3, 64, 64] image"));
}

TEST(WorldPrompts, HardNegativesAreFalseOfTheScene) {
  Rng rng(21);
  for (Task task : kTasks) {
    const std::vector<Prompt> all = all_prompts(task);
    for (int i = 0; i < 60; ++i) {
      const Prompt& prompt = all[static_cast<size_t>(rng.below(static_cast<int64_t>(all.size())))];
      const Prompt negative = hard_negative(prompt, rng);
      EXPECT_NE(negative.text(), prompt.text());
      EXPECT_EQ(parse_prompt(negative.text()).task, task) << negative.text();
      const at::Tensor image = render(scene_for_prompt(prompt, rng));
      EXPECT_TRUE(check(image, prompt).passed) << prompt.text();
      EXPECT_FALSE(check(image, negative).passed) << prompt.text() << " vs " << negative.text();
    }
  }
}

// Every one-edit negative parses, differs from the prompt, and is false of the prompt's scenes.
TEST(WorldPrompts, OneEditNegativesAreFalseOfTheScene) {
  Rng rng(22);
  for (Task task : kTasks) {
    const std::vector<Prompt> all = all_prompts(task);
    for (int i = 0; i < 12; ++i) {
      const Prompt& prompt = all[static_cast<size_t>(rng.below(static_cast<int64_t>(all.size())))];
      const std::vector<Prompt> negatives = one_edit_negatives(prompt);
      ASSERT_FALSE(negatives.empty()) << prompt.text();
      const at::Tensor image = render(scene_for_prompt(prompt, rng));
      ASSERT_TRUE(check(image, prompt).passed) << prompt.text();
      std::set<std::string> texts;
      for (const Prompt& negative : negatives) {
        EXPECT_NE(negative.text(), prompt.text());
        EXPECT_TRUE(texts.insert(negative.text()).second) << "listed twice: " << negative.text();
        EXPECT_NO_THROW(parse_prompt(negative.text())) << negative.text();
        EXPECT_FALSE(check(image, negative).passed) << prompt.text() << " vs " << negative.text();
      }
    }
  }
}

// The edits, counted by hand: 5 other colours + 2 other shapes per object (+1 size flip where
// sizes are named), the swaps, the relation, the counts; edits that name the other object go.
TEST(WorldPrompts, OneEditNegativesOfHandPickedPrompts) {
  EXPECT_EQ(one_edit_negatives(parse_prompt("a red circle")).size(), 7u);
  EXPECT_EQ(one_edit_negatives(parse_prompt("three red circles")).size(), 7u + 2u);  // counts 2 and 4
  // Same shape: "blue circle and blue circle" (and the reverse) name only present objects, and
  // swapping the colours gives the same scene: 14 − 2 edits.
  EXPECT_EQ(one_edit_negatives(parse_prompt("a red circle and a blue circle")).size(), 12u);
  const std::vector<Prompt> position = one_edit_negatives(parse_prompt("a red circle to the left of a blue square"));
  EXPECT_EQ(position.size(), 14u + 1u + 1u);  // object edits, the colour swap, the reversed relation
  EXPECT_EQ(position.back().text(), "a red circle to the right of a blue square");
  const std::vector<Prompt> sizes = one_edit_negatives(parse_prompt("a large red circle and a small blue square"));
  EXPECT_EQ(sizes.size(), 16u + 2u);
  EXPECT_TRUE(std::any_of(sizes.begin(), sizes.end(), [](const Prompt& p) {
    return p.text() == "a small red circle and a large blue square";
  }));
}
