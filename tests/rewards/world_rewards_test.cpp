// The world's rewards: the soft checker agrees with the hard one on rendered scenes and is
// differentiable (finite differences), world.clip scores with the world CLIP folder layout, and
// the registry knows all three.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <map>

#include "rewards/world_rewards.h"
#include "test_util.h"
#include "world/checker.h"
#include "world/render.h"
#include "world_models.h"

namespace rewardgen {
namespace {

// Inside the mass interval of the soft count term its gradient is zero; the checker's count then
// carries one: "more of this colour" when too few objects are found, "less" when too many.
TEST(CompositionalReward, CountHasAGradientTowardTheAskedNumber) {
  CompositionalReward reward;
  const world::Prompt prompt = world::parse_prompt("three red circles");
  const int64_t red = static_cast<int64_t>(*prompt.objects[0].colour);
  // The red mass of three objects between small and large: inside count_score's interval.
  const double small_area = M_PI * world::kSmallHalfExtent * world::kSmallHalfExtent;
  const double large_area = M_PI * world::kLargeHalfExtent * world::kLargeHalfExtent;
  const double mass = 3 * 0.5 * (small_area + large_area);
  auto gradient_with = [&](int found) {
    at::Tensor masks = at::zeros({6, 64, 64});
    masks[red].fill_(mass / (64.0 * 64.0));
    masks.requires_grad_(true);
    std::vector<world::Detection> detections;
    for (int i = 0; i < found; ++i)
      detections.push_back({prompt.objects[0].colour.value(), world::Shape::circle, world::Size::small, 10.f + 15 * i, 10.f, 120,
                            0, 0, 1, 1, 0.79f});
    const at::Tensor score = reward.prompt_score(masks, at::Tensor(), prompt, detections);
    score.backward();
    return std::make_pair(score.item<double>(), masks.grad()[red].sum().item<double>());
  };
  const auto [two_score, two_grad] = gradient_with(2);
  const auto [three_score, three_grad] = gradient_with(3);
  const auto [four_score, four_grad] = gradient_with(4);
  EXPECT_GT(two_grad, 0);              // too few found: more red
  EXPECT_LT(four_grad, 0);             // too many: less red
  EXPECT_NEAR(three_grad, 0, 1e-9);    // right count, mass inside the interval: nothing to change
  // The value is the hard count's factor: exp(−½ (1/0.5)²) off by one.
  EXPECT_NEAR(two_score / three_score, std::exp(-2.0), 1e-5);
  EXPECT_NEAR(four_score / three_score, std::exp(-2.0), 1e-5);
}

// count_gradient: with too many found, the count's gradient acts on the smallest surplus object's box
// alone (erase it) and not on the colour everywhere; the value does not change, and with too few
// found the gradient is the plain one.
TEST(CompositionalReward, CountGradientErasesTheSmallestSurplusObject) {
  const world::Prompt prompt = world::parse_prompt("two red circles");
  const int64_t red = static_cast<int64_t>(*prompt.objects[0].colour);
  const double small_area = M_PI * world::kSmallHalfExtent * world::kSmallHalfExtent;
  const double large_area = M_PI * world::kLargeHalfExtent * world::kLargeHalfExtent;
  auto detection = [&](int x0, int area) {  // a red circle whose box spans columns x0..x0+9, rows 20..29
    return world::Detection{world::Colour::red, world::Shape::circle, world::Size::small, x0 + 4.5f, 24.5f, area,
                            x0, 20, x0 + 9, 29, 0.79f};
  };
  auto run = [&](double scale, const std::vector<world::Detection>& detections) {
    SoftCheckerOptions options;
    options.count_gradient = scale;
    CompositionalReward reward(options);
    // The red mass of two objects between small and large (inside count_score's interval, whose own
    // gradient is then zero), spread evenly over the image.
    at::Tensor masks = at::zeros({6, 64, 64});
    masks[red].fill_(2 * 0.5 * (small_area + large_area) / (64.0 * 64.0));
    masks.requires_grad_(true);
    const at::Tensor score = reward.prompt_log_score(masks, at::Tensor(), prompt, detections);
    score.backward();
    return std::make_pair(score.item<double>(), masks.grad()[red].clone());
  };
  // Three found; the middle one (columns 22..31) is the smallest.
  const std::vector<world::Detection> three = {detection(2, 120), detection(22, 90), detection(42, 150)};
  const auto [plain_value, plain_grad] = run(0, three);
  const auto [erase_value, erase_grad] = run(1, three);
  EXPECT_DOUBLE_EQ(erase_value, plain_value);
  EXPECT_LT(plain_grad.max().item<double>(), 0);  // plain: less red on every pixel
  // With the removal gradient: negative on the smallest object's box grown by a pixel (rows 19..30,
  // columns 21..32), zero elsewhere.
  const at::Tensor box = erase_grad.slice(0, 19, 31).slice(1, 21, 33);
  EXPECT_LT(box.max().item<double>(), 0);
  EXPECT_NEAR(erase_grad.abs().sum().item<double>(), box.abs().sum().item<double>(), 1e-9);
  // d/dm of −½((found + m/a − 2)/σ)² at found = 3: −(1/σ²)/a per pixel, a = the mean mass per found object.
  const double per_object = std::max(2 * 0.5 * (small_area + large_area) / 3, 0.5 * small_area);
  EXPECT_NEAR(box.mean().item<double>(), -1 / (0.5 * 0.5) / per_object, 1e-6);
  // Too few found: the removal gradient does not apply.
  const std::vector<world::Detection> one = {detection(2, 120)};
  EXPECT_TRUE(at::allclose(run(1, one).second, run(0, one).second));
}

// Shapes: the value stays the checker's factor (so the reward ranks as before), and the gradient
// says how to turn the object into the asked shape: clear a square's corners for "circle", fill a
// circle's box corners for "square".
TEST(CompositionalReward, ShapeHasAGradientTowardTheAskedShape) {
  CompositionalReward reward;
  auto image_of = [](world::Shape shape) {
    world::Scene scene;
    scene.objects.push_back({shape, world::Colour::red, world::Size::large, 32, 32, 11});
    // A little of the background mixed in: exact palette pixels sit where every colour mask is flat.
    const at::Tensor rendered = world::render(scene).unsqueeze(0).to(at::kDouble);
    return 0.85 * rendered + 0.15 * (230 / 127.5 - 1);
  };
  // The box corners outside the inscribed circle: the pixels where the two shapes differ.
  at::Tensor corners = at::zeros({1, 1, 64, 64}, at::kDouble);
  for (int y = 21; y <= 42; ++y)
    for (int x = 21; x <= 42; ++x) {
      const float u = (x + 0.5f - 32) / 11, v = (y + 0.5f - 32) / 11;
      if (!world::inside_shape(world::Shape::circle, u, v)) corners[0][0][y][x] = 1;
    }
  const world::Rgb red = world::palette_rgb(world::Colour::red);
  const at::Tensor red_image = at::tensor({red.r, red.g, red.b}, at::kDouble).view({1, 3, 1, 1}) / 127.5 - 1;
  auto derivative_along = [&](world::Shape drawn, const std::string& prompt, const at::Tensor& target) {
    const at::Tensor image = image_of(drawn);
    at::Tensor x = image.clone().requires_grad_(true);
    reward.score(x, {prompt}).sum().backward();
    return (x.grad() * corners * (target - image)).sum().item<double>();
  };
  const at::Tensor background = at::full({1, 3, 1, 1}, 230 / 127.5 - 1, at::kDouble);
  EXPECT_GT(derivative_along(world::Shape::square, "a red circle", background), 0);  // clear the corners
  EXPECT_GT(derivative_along(world::Shape::circle, "a red square", red_image), 0);   // fill them
  EXPECT_LT(derivative_along(world::Shape::circle, "a red circle", red_image), 0);   // keep it a circle

  // The value: the checker's factor, as without the shape masks.
  for (world::Shape drawn : {world::Shape::square, world::Shape::circle}) {
    const at::Tensor image = image_of(drawn);
    const at::Tensor masks = reward.colour_masks(image)[0], wide = reward.shape_masks(image)[0];
    const world::Prompt prompt = world::parse_prompt("a red circle");
    const auto detections = world::detect_objects(image[0]);
    EXPECT_DOUBLE_EQ(reward.prompt_score(masks, wide, prompt, detections).item<double>(),
                     reward.prompt_score(masks, at::Tensor(), prompt, detections).item<double>());
  }
  // A square asked to be "a red circle", with the shape gradient scaled by S: the value, and the
  // derivative along "clear the corners". Switched off (S = 0) the value stays and the corners carry
  // next to no gradient; scaled, the shape part of the derivative scales with S.
  auto square_as_circle = [&](double scale) {
    SoftCheckerOptions options;
    options.shape_gradient = scale;
    CompositionalReward scaled(options);
    at::Tensor x = image_of(world::Shape::square).requires_grad_(true);
    const at::Tensor value = scaled.score(x, {"a red circle"}).sum();
    value.backward();
    const double along = (x.grad() * corners * (background - image_of(world::Shape::square))).sum().item<double>();
    return std::make_pair(value.item<double>(), along);
  };
  const auto [value_off, along_off] = square_as_circle(0);
  const auto [value_on, along_on] = square_as_circle(1);
  const auto [value_tenth, along_tenth] = square_as_circle(0.1);
  EXPECT_DOUBLE_EQ(value_off, value_on);
  EXPECT_DOUBLE_EQ(value_tenth, value_on);
  EXPECT_NEAR(along_on, derivative_along(world::Shape::square, "a red circle", background), 1e-12);
  EXPECT_GT(along_on, 10 * std::abs(along_off)) << along_on << " vs " << along_off;
  EXPECT_NEAR(along_tenth - along_off, 0.1 * (along_on - along_off), 1e-6 * std::abs(along_on));
  const double miss = reward.score(image_of(world::Shape::square), {"a red circle"}).item<double>();
  const double hit = reward.score(image_of(world::Shape::circle), {"a red circle"}).item<double>();
  EXPECT_NEAR(miss / hit, SoftCheckerOptions{}.shape_miss, 0.05);  // the size factors differ a little
}

// One object centred in a scene, [1, 3, 64, 64] in double, a tenth of the way to a pale grey so that
// no pixel is exactly a palette colour (where a wide mask is flat).
at::Tensor one_object_off_palette(const world::Object& object) {
  world::Scene scene;
  scene.objects.push_back(object);
  return 0.9 * world::render(scene).unsqueeze(0).to(at::kDouble) + 0.1 * (230 / 127.5 - 1);
}

// Per pixel, the step from `image` to the palette colour, in the [-1, 1] scale.
at::Tensor toward_colour(const at::Tensor& image, world::Colour colour) {
  const world::Rgb c = world::palette_rgb(colour);
  return at::tensor({c.r, c.g, c.b}, at::kDouble).view({1, 3, 1, 1}) / 127.5 - 1 - image;
}

// world.compositional with `options` on one image [1, 3, H, W] for `prompt`: its score into *value,
// its gradient in the pixels returned.
at::Tensor score_and_gradient(const SoftCheckerOptions& options, const at::Tensor& image, const std::string& prompt,
                              double* value) {
  at::Tensor x = image.clone().requires_grad_(true);
  const at::Tensor score = CompositionalReward(options).score(x, {prompt}).sum();
  score.backward();
  *value = score.item<double>();
  return x.grad();
}

// The presence gradient: "a red triangle" asked of a purple triangle. The sharp masks give no slope
// toward red on the triangle's pixels; with presence_gradient the mass says "turn it red", the value
// stays the same.
TEST(CompositionalReward, PresenceGradientPullsAnObjectTowardTheAskedColour) {
  const at::Tensor image = one_object_off_palette({world::Shape::triangle, world::Colour::purple, world::Size::large, 32, 32, 11});
  const at::Tensor toward_red = toward_colour(image, world::Colour::red);
  // The triangle's pixels (the purple mask is high there).
  const at::Tensor triangle = (CompositionalReward().colour_masks(image).select(1, static_cast<int64_t>(world::Colour::purple)) > 0.5)
                                  .unsqueeze(1).to(at::kDouble);
  ASSERT_GT(triangle.sum().item<double>(), 100);
  auto derivative = [&](double presence, double* value) {
    SoftCheckerOptions options;
    options.log_score = true;
    options.presence_gradient = presence;
    return (score_and_gradient(options, image, "a red triangle", value) * triangle * toward_red).sum().item<double>();
  };
  double without_value = 0, with_value = 0;
  const double without = derivative(0, &without_value), with = derivative(1, &with_value);
  EXPECT_DOUBLE_EQ(with_value, without_value);
  EXPECT_GT(with, 0);
  EXPECT_GT(with, 1000 * std::abs(without)) << with << " vs " << without;
}

// The size gradient: "a large red square" asked of a small one. The sharp masks are flat on the
// background, so nothing says "paint the pixels around the square red"; with size_gradient the size
// clause's mass does (on the ring a large square would cover), the value stays the same, and the
// pixels far outside a large object's reach get no pull.
TEST(CompositionalReward, SizeGradientGrowsASmallObjectAskedToBeLarge) {
  const at::Tensor image = one_object_off_palette({world::Shape::square, world::Colour::red, world::Size::small, 32, 32, 6});
  const at::Tensor toward_red = toward_colour(image, world::Colour::red);
  const at::Tensor coords = at::arange(64, at::kDouble) + 0.5;
  const at::Tensor dx = (coords.view({1, 64}) - 32).abs(), dy = (coords.view({64, 1}) - 32).abs();
  const at::Tensor chebyshev = at::maximum(dx, dy);
  const at::Tensor ring = ((chebyshev > 7) * (chebyshev <= 10)).to(at::kDouble).view({1, 1, 64, 64});  // what a large square adds
  const at::Tensor far = (chebyshev > 16).to(at::kDouble).view({1, 1, 64, 64});
  auto pulls = [&](double size_gradient, double* value) {
    SoftCheckerOptions options;
    options.log_score = true;
    options.size_gradient = size_gradient;
    const at::Tensor along = (score_and_gradient(options, image, "a large red square", value) * toward_red).sum(1, true);
    return std::make_pair((along * ring).sum().item<double>(), (along * far).abs().sum().item<double>());
  };
  double without_value = 0, with_value = 0;
  const auto [ring_without, far_without] = pulls(0, &without_value);
  const auto [ring_with, far_with] = pulls(1, &with_value);
  EXPECT_DOUBLE_EQ(with_value, without_value);
  EXPECT_LT(without_value, std::log(0.1));  // the size clause fails
  EXPECT_GT(ring_with, 0);
  EXPECT_GT(ring_with, 100 * std::abs(ring_without)) << ring_with << " vs " << ring_without;
  EXPECT_NEAR(far_with, far_without, 1e-9 + 1e-6 * far_without);  // no pull beyond the object's reach
  // "a small red square" asked of the same small square: the clause holds; no growth term applies.
  SoftCheckerOptions with_growth;
  with_growth.size_gradient = 1;
  double unused = 0;
  EXPECT_TRUE(at::allclose(score_and_gradient(with_growth, image, "a small red square", &unused),
                           score_and_gradient({}, image, "a small red square", &unused)));
}

// world.compositional:log is log r, with ∇ log r = ∇r / r, and stays finite where r underflows.
TEST(CompositionalReward, LogScoreIsTheLogarithmWithTheChainRulesGradient) {
  CompositionalReward plain;
  SoftCheckerOptions log_options;
  log_options.log_score = true;
  CompositionalReward log_reward(log_options);
  world::Rng rng(11);
  int compared = 0;
  for (world::Task task : world::kTasks) {
    const std::vector<world::Prompt> all = world::all_prompts(task);
    for (int i = 0; i < 3; ++i) {
      const world::Prompt& prompt = all[static_cast<size_t>(rng.below(static_cast<int64_t>(all.size())))];
      const world::Prompt asked = i == 0 ? prompt : world::hard_negative(prompt, rng);  // true and false prompts
      const at::Tensor rendered = world::render(world::scene_for_prompt(prompt, rng)).unsqueeze(0).to(at::kDouble);
      const at::Tensor image = 0.9 * rendered + 0.1 * (230 / 127.5 - 1);  // off the exact palette: every mask has a slope
      at::Tensor x = image.clone().requires_grad_(true), y = image.clone().requires_grad_(true);
      const at::Tensor r = plain.score(x, {asked.text()}).sum(), log_r = log_reward.score(y, {asked.text()}).sum();
      r.backward();
      log_r.backward();
      if (r.item<double>() < 1e-12) continue;
      EXPECT_NEAR(log_r.item<double>(), std::log(r.item<double>()), 1e-9) << asked.text();
      const double scale = y.grad().abs().max().item<double>() + 1e-300;
      EXPECT_TRUE(at::allclose(y.grad() / scale, x.grad() / r / scale, 1e-6, 1e-9)) << asked.text();
      ++compared;
    }
  }
  EXPECT_GE(compared, 12);
  // Far off: four red circles asked of a bare background, where the product is ~e^-64.
  const at::Tensor background = at::full({1, 3, 64, 64}, 230 / 127.5 - 1, at::kDouble);
  const double far = log_reward.score(background, {"four red circles"}).item<double>();
  EXPECT_TRUE(std::isfinite(far));
  EXPECT_LT(far, -20);
}

TEST(CompositionalReward, HighForTrueAndLowForFalsePrompts) {
  CompositionalReward reward;
  world::Rng rng(5);
  double true_sum = 0, false_sum = 0;
  int n = 0, ranked = 0;
  std::map<std::string, int> task_ranked;
  for (world::Task task : world::kTasks) {
    const std::vector<world::Prompt> all = world::all_prompts(task);
    for (int i = 0; i < 20; ++i, ++n) {
      const world::Prompt& prompt = all[static_cast<size_t>(rng.below(static_cast<int64_t>(all.size())))];
      const world::Prompt negative = world::hard_negative(prompt, rng);
      const at::Tensor image = world::render(world::scene_for_prompt(prompt, rng)).unsqueeze(0);
      const double good = reward.score(image, {prompt.text()}).item<double>();
      const double bad = reward.score(image, {negative.text()}).item<double>();
      EXPECT_GE(good, 0.0);
      EXPECT_LE(good, 1.0);
      true_sum += good, false_sum += bad, ranked += good > bad;
      task_ranked[world::name(task)] += good > bad;
    }
  }
  for (const auto& [name, count] : task_ranked) std::cout << name << " ranked " << count << "/20\n";
  EXPECT_GT(true_sum / n, 0.8);
  EXPECT_LT(false_sum / n, 0.35);
  EXPECT_GT(static_cast<double>(ranked) / n, 0.9);
}

TEST(CompositionalReward, GradientMatchesFiniteDifferences) {
  world::Scene scene;
  scene.objects.push_back({world::Shape::circle, world::Colour::red, world::Size::large, 40, 30, 11});
  scene.objects.push_back({world::Shape::square, world::Colour::blue, world::Size::small, 20, 34, 6});
  // Blur the scene a little so that many pixels sit on the soft masks' slopes.
  const at::Tensor base = at::avg_pool2d(world::render(scene).unsqueeze(0), 3, 1, 1).to(at::kDouble);
  CompositionalReward reward;
  const std::vector<std::string> prompt = {"a red circle to the left of a blue square"};
  at::Tensor x = base.clone().requires_grad_(true);
  reward.score(x, prompt).sum().backward();
  const at::Tensor grad = x.grad();
  // Directional derivative along a random direction vs a central difference.
  at::Generator generator = at::detail::createCPUGenerator(3);
  const at::Tensor direction = at::randn(base.sizes(), generator, at::kDouble);
  const double h = 1e-5;
  const double numeric = (reward.score(base + h * direction, prompt).item<double>() -
                          reward.score(base - h * direction, prompt).item<double>()) / (2 * h);
  const double analytic = (grad * direction).sum().item<double>();
  EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric)));
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
}

TEST(CompositionalReward, NamesItselfOnPromptsOutsideTheGrammar) {
  CompositionalReward reward;
  EXPECT_TRUE(testing::throws_error_containing(
      [&] { reward.score(at::zeros({1, 3, 64, 64}), {"a photo of a cat"}); }, "world.compositional: prompt 'a photo of a cat'"));
}

TEST(WorldRewards, RegisteredAndWorldClipScoresWithAWorldFolder) {
  const RewardRegistry registry = builtin_reward_registry();
  EXPECT_TRUE(registry.contains("world.compositional"));
  EXPECT_TRUE(registry.contains("world.jpeg"));
  testing::TempDir tmp;
  testing::write_tiny_world(tmp.file("world"), false);
  auto clip = registry.make("world.clip:" + tmp.file("world"), {});
  EXPECT_TRUE(clip->differentiable());
  world::Rng rng(1);
  const at::Tensor images = world::render_batch({world::scene_for_prompt(world::parse_prompt("a red circle"), rng),
                                                 world::scene_for_prompt(world::parse_prompt("two blue squares"), rng)});
  const at::Tensor scores = clip->score(images, {"a red circle", "two blue squares"});
  ASSERT_EQ(scores.sizes(), (at::IntArrayRef{2}));
  EXPECT_LE(scores.abs().max().item<double>(), 100.0 + 1e-4);
  auto jpeg = registry.make("world.jpeg", {});
  EXPECT_LT(jpeg->score(images, {"a red circle", "two blue squares"}).max().item<double>(), 0.0);  // −kB
  EXPECT_EQ(jpeg->name(), "world.jpeg");  // its own name in logs and running statistics
}

// clip_contrast is log softmax over {prompt, its one-edit negatives} of world.clip's 100·cos:
// recomputed here from world.clip's scores of the same image against each candidate.
TEST(WorldRewards, ClipContrastIsTheLogSoftmaxOfClipScoresOverTheNegatives) {
  const RewardRegistry registry = builtin_reward_registry();
  testing::TempDir tmp;
  testing::write_tiny_world(tmp.file("world"), false);
  auto clip = registry.make("world.clip:" + tmp.file("world"), {});
  auto contrast = registry.make("world.clip_contrast:" + tmp.file("world"), {});
  EXPECT_TRUE(contrast->differentiable());
  EXPECT_EQ(contrast->name(), "world.clip_contrast:" + tmp.file("world"));
  world::Rng rng(2);
  const std::vector<std::string> prompts = {"a red circle to the left of a blue square", "three green triangles"};
  const at::Tensor images = world::render_batch({world::scene_for_prompt(world::parse_prompt(prompts[0]), rng),
                                                 world::scene_for_prompt(world::parse_prompt(prompts[1]), rng)})
                                .to(at::kDouble)
                                .requires_grad_(true);
  const at::Tensor scores = contrast->score(images, prompts);
  ASSERT_EQ(scores.sizes(), (at::IntArrayRef{2}));
  for (int64_t i = 0; i < 2; ++i) {
    std::vector<std::string> candidates = {prompts[static_cast<size_t>(i)]};
    for (const world::Prompt& negative : world::one_edit_negatives(world::parse_prompt(prompts[static_cast<size_t>(i)])))
      candidates.push_back(negative.text());
    const at::Tensor repeated = images[i].detach().unsqueeze(0).expand({static_cast<int64_t>(candidates.size()), 3, 64, 64});
    const at::Tensor logits = clip->score(repeated, candidates);
    const double expected = (logits[0] - logits.logsumexp(0)).item<double>();
    EXPECT_NEAR(scores[i].item<double>(), expected, 1e-4) << prompts[static_cast<size_t>(i)];
    EXPECT_LT(scores[i].item<double>(), 0.0);
  }
  scores.sum().backward();
  EXPECT_TRUE(at::isfinite(images.grad()).all().item<bool>());
  EXPECT_GT(images.grad().abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(testing::throws_error_containing([&] { contrast->score(images.detach(), {"a photo of a cat", prompts[1]}); },
                                               "world.clip_contrast"));
}

}  // namespace
}  // namespace rewardgen
