#include "rewards/reward.h"

#include <gtest/gtest.h>

#include <cmath>

#include "rewards/composite.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::throws_error_containing;

// r = mean pixel value · factor: a differentiable reward whose scores are known by hand.
class MeanReward : public Reward {
 public:
  MeanReward(std::string name, double factor, bool differentiable = true)
      : name_(std::move(name)), factor_(factor), differentiable_(differentiable) {}
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override {
    check_reward_inputs(name_, images, prompts);
    return images.mean({1, 2, 3}) * factor_;
  }
  bool differentiable() const override { return differentiable_; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  double factor_;
  bool differentiable_;
};

RewardRegistry registry_with_means() {
  RewardRegistry r;
  r.add({"mean", "", "mean pixel", [](const std::string&, const RewardContext&) { return std::make_unique<MeanReward>("mean", 1.0); }});
  r.add({"scaled", "FACTOR", "mean pixel times FACTOR", [](const std::string& arg, const RewardContext&) {
           return std::make_unique<MeanReward>("scaled:" + arg, std::stod(arg));
         }});
  r.add({"frozen", "", "not differentiable", [](const std::string&, const RewardContext&) {
           return std::make_unique<MeanReward>("frozen", 2.0, false);
         }});
  return r;
}

TEST(RewardInputs, AcceptsImagesInRangeWithSlack) {
  EXPECT_NO_THROW(check_reward_inputs("r", at::full({2, 3, 4, 4}, 1.2), {"a", "b"}));
}

TEST(RewardInputs, RejectsBadInputsNamingTheRewardAndProblem) {
  const std::vector<std::string> two{"a", "b"};
  EXPECT_TRUE(throws_error_containing([&] { check_reward_inputs("aesthetic:x", at::zeros({3, 4, 4}), two); },
                                      "reward 'aesthetic:x': images must be [B, 3, H, W], got [3, 4, 4]"));
  EXPECT_TRUE(throws_error_containing([&] { check_reward_inputs("r", at::zeros({2, 4, 4, 4}), two); }, "[B, 3, H, W]"));
  EXPECT_TRUE(throws_error_containing([&] { check_reward_inputs("r", at::zeros({2, 3, 4, 4}), {"a"}); },
                                      "1 prompts for 2 images"));
  EXPECT_TRUE(throws_error_containing([&] { check_reward_inputs("r", at::full({2, 3, 4, 4}, 255.0), two); },
                                      "pixel values span [255, 255], expected [-1, 1]"));
  at::Tensor nan = at::zeros({2, 3, 4, 4});
  nan[1][2][3][3] = std::nan("");
  EXPECT_TRUE(throws_error_containing([&] { check_reward_inputs("r", nan, two); }, "NaN or Inf pixels (1 NaN)"));
  at::Tensor inf = at::zeros({2, 3, 4, 4});
  inf[0][0][0][0] = INFINITY;
  EXPECT_TRUE(throws_error_containing([&] { check_reward_inputs("r", inf, two); }, "NaN or Inf"));
  EXPECT_TRUE(throws_error_containing([&] { check_reward_inputs("r", at::zeros({2, 3, 4, 4}, at::kByte), two); },
                                      "floating point"));
}

TEST(RewardRegistry, MakesBySpecAndChecksArguments) {
  const RewardRegistry r = registry_with_means();
  const at::Tensor images = at::full({2, 3, 2, 2}, 0.5);
  EXPECT_EQ(r.make("mean", {})->name(), "mean");
  // The argument keeps any further ':' (paths, URLs).
  auto scaled = r.make("scaled:3", {});
  EXPECT_DOUBLE_EQ(scaled->score(images, {"a", "b"})[1].item<double>(), 1.5);
  EXPECT_TRUE(throws_error_containing([&] { r.make("nope:x", {}); }, "unknown reward 'nope' (known: frozen, mean, scaled:FACTOR)"));
  EXPECT_TRUE(throws_error_containing([&] { r.make("scaled", {}); }, "reward 'scaled' needs an argument: 'scaled:FACTOR'"));
  EXPECT_TRUE(throws_error_containing([&] { r.make("mean:1", {}); }, "reward 'mean' takes no argument"));
}

TEST(RewardRegistry, AnotherRoomAddsRewardsUnderItsPrefix) {
  RewardRegistry r = builtin_reward_registry();
  r.add({"world.test", "", "a reward registered from outside rewards/",
         [](const std::string&, const RewardContext&) { return std::make_unique<MeanReward>("world.test", 1.0); }});
  EXPECT_TRUE(r.contains("world.test"));
  EXPECT_EQ(r.make("world.test", {})->name(), "world.test");
  EXPECT_TRUE(throws_error_containing([&] { r.add({"world.test", "", "", r.entries()[0].make}); }, "registered twice"));
  EXPECT_TRUE(throws_error_containing([&] { r.add({"a:b", "", "", r.entries()[0].make}); }, "hold no ':'"));
}

TEST(RewardRegistry, BuiltinNames) {
  std::vector<std::string> names;
  for (const RewardEntry& e : builtin_reward_registry().entries()) names.push_back(e.name + (e.argument.empty() ? "" : ":" + e.argument));
  EXPECT_EQ(names, (std::vector<std::string>{"aesthetic:DIR", "brightness", "clip:DIR", "hpsv2:FILE", "imagereward:DIR", "jpeg_compressibility",
                                             "jpeg_incompressibility", "pickscore:DIR", "world.clip:[DIR]", "world.clip_contrast:[DIR]",
                                             "world.compositional:[log,no_shape_gradient|shape_gradient=S,presence_gradient=S,size_gradient=S,count_gradient=S]", "world.jpeg",
                                             "world.verifier:DIR"}));
  const RewardRegistry& registry = builtin_reward_registry();
  // brightness: the mean pixel, 0.5 for a flat 0.5 image, 0 for one half −1 half +1; ∂/∂pixel = 1/(3·H·W).
  const auto brightness = registry.make("brightness", {});
  at::Tensor images = at::full({2, 3, 2, 2}, 0.5);
  images[1].fill_(-1);
  images[1].narrow(2, 0, 1).fill_(1);
  images.requires_grad_();
  const at::Tensor b = brightness->score(images, {"a", "b"});
  EXPECT_NEAR(b[0].item<double>(), 0.5, 1e-7);
  EXPECT_NEAR(b[1].item<double>(), 0.0, 1e-7);
  b.sum().backward();
  EXPECT_TRUE(at::allclose(images.grad(), at::full({2, 3, 2, 2}, 1.0 / 12)));
  EXPECT_EQ(registry.make("world.compositional:no_shape_gradient", {})->name(), "world.compositional:no_shape_gradient");
  EXPECT_TRUE(throws_error_containing([&] { registry.make("world.compositional:shapes", {}); }, "unknown argument 'shapes'"));
  EXPECT_TRUE(throws_error_containing([&] { registry.make("world.verifier", {}); }, "world.verifier"));
  EXPECT_TRUE(throws_error_containing([&] { registry.make("world.verifier:/no/such/folder", {}); }, "/no/such/folder"));
  EXPECT_EQ(registry.make("world.compositional:shape_gradient=0.25", {})->name(), "world.compositional:shape_gradient=0.25");
  EXPECT_EQ(registry.make("world.compositional:shape_gradient=1", {})->name(), "world.compositional");
  EXPECT_EQ(registry.make("world.compositional:shape_gradient=0.5,log", {})->name(), "world.compositional:log,shape_gradient=0.5");
  EXPECT_EQ(registry.make("world.compositional:log", {})->name(), "world.compositional:log");
  EXPECT_EQ(registry.make("world.compositional:presence_gradient=2,log", {})->name(), "world.compositional:log,presence_gradient=2");
  EXPECT_EQ(registry.make("world.compositional:size_gradient=1,presence_gradient=1,log", {})->name(),
            "world.compositional:log,presence_gradient=1,size_gradient=1");
  EXPECT_EQ(registry.make("world.compositional:count_gradient=1,log", {})->name(), "world.compositional:log,count_gradient=1");
  EXPECT_TRUE(throws_error_containing([&] { registry.make("world.compositional:size_gradient=inf", {}); }, "size_gradient=inf is not"));
  EXPECT_TRUE(throws_error_containing([&] { registry.make("world.compositional:presence_gradient=-2", {}); }, "presence_gradient=-2 is not"));
  EXPECT_TRUE(throws_error_containing([&] { registry.make("world.compositional:log,logs", {}); }, "unknown argument 'logs'"));
  for (const std::string bad : {"shape_gradient=", "shape_gradient=x", "shape_gradient=-1", "shape_gradient=nan", "shape_gradient=11"})
    EXPECT_TRUE(throws_error_containing([&] { registry.make("world.compositional:" + bad, {}); }, "not a number in [0, 10]")) << bad;
}

TEST(RunningStats, MatchesTheDirectMeanAndVarianceAcrossBatches) {
  RunningStats s;
  s.update(at::tensor({1.0, 2.0, 3.0}));
  s.update(at::tensor({10.0}));
  s.update(at::tensor(std::vector<double>{}));  // an empty batch changes nothing
  // values 1, 2, 3, 10: mean 4, squared deviations 9 + 4 + 1 + 36 = 50, population variance 12.5
  EXPECT_EQ(s.count(), 4);
  EXPECT_DOUBLE_EQ(s.mean(), 4.0);
  EXPECT_DOUBLE_EQ(s.variance(), 12.5);
  EXPECT_DOUBLE_EQ(s.stddev(), std::sqrt(12.5));
  // Large offset: the naive E[x²] − E[x]² loses every digit here, Welford/Chan does not.
  RunningStats big;
  for (int i = 0; i < 10; ++i) big.update(at::tensor({1e9 + 1.0, 1e9 + 3.0}));
  EXPECT_DOUBLE_EQ(big.mean(), 1e9 + 2.0);
  EXPECT_NEAR(big.variance(), 1.0, 1e-6);
  EXPECT_TRUE(throws_error_containing([&] { s.update(at::tensor({std::nan("")})); }, "NaN score"));
}

TEST(CompositeReward, WeightedSumStatisticsAndResume) {
  const RewardRegistry r = registry_with_means();
  auto composite = make_composite_reward(R"({"mean": 2.0, "scaled:-1": 0.5})", r, {});
  EXPECT_TRUE(composite->differentiable());
  EXPECT_EQ(composite->name(), R"({"mean":2.0,"scaled:-1":0.5})");
  // Image means 0.5 and -0.25: r = 2·m + 0.5·(−m) = 1.5·m
  at::Tensor images = at::stack({at::full({3, 2, 2}, 0.5), at::full({3, 2, 2}, -0.25)}).requires_grad_();
  const at::Tensor total = composite->score(images, {"a", "b"});
  EXPECT_NEAR(total[0].item<double>(), 0.75, 1e-7);
  EXPECT_NEAR(total[1].item<double>(), -0.375, 1e-7);
  total.sum().backward();  // d r / d pixel = 1.5 / 12
  EXPECT_NEAR(images.grad()[0][0][0][0].item<double>(), 1.5 / 12, 1e-7);
  // Running statistics of the unweighted parts: "mean" saw 0.5, -0.25 -> mean 0.125, std 0.375.
  const auto stats = composite->stats_json();
  EXPECT_NEAR(stats["mean/mean"].get<double>(), 0.125, 1e-7);
  EXPECT_NEAR(stats["mean/std"].get<double>(), 0.375, 1e-7);
  EXPECT_NEAR(stats["scaled:-1/batch_mean"].get<double>(), -0.125, 1e-7);

  // Resume: a new composite continues from the saved statistics.
  const TensorMap state = composite->state();
  EXPECT_EQ(state.size(), 6u);
  auto resumed = make_composite_reward(R"([{"mean": 2.0}, ["scaled:-1", 0.5]])", r, {});
  resumed->load_state(state, "ckpt");
  resumed->score(at::full({1, 3, 2, 2}, 0.875), {"c"});  // "mean" now saw 0.5, -0.25, 0.875: mean 0.375
  EXPECT_EQ(resumed->parts()[0].stats.count(), 3);
  EXPECT_NEAR(resumed->parts()[0].stats.mean(), 0.375, 1e-7);
  auto other = make_composite_reward(R"({"mean": 1})", r, {});
  EXPECT_TRUE(throws_error_containing([&] { other->load_state(state, "ckpt"); },
                                      "ckpt: statistics 'reward_stats/scaled:-1/count' belong to a reward"));
  EXPECT_TRUE(throws_error_containing([&] { make_composite_reward(R"({"frozen": 1})", r, {})->load_state({}, "ckpt"); },
                                      "ckpt: missing tensor 'reward_stats/frozen/count'"));
}

TEST(CompositeReward, DifferentiableOnlyWhenEveryWeightedPartIs) {
  const RewardRegistry r = registry_with_means();
  EXPECT_FALSE(make_composite_reward(R"({"mean": 1, "frozen": 0.1})", r, {})->differentiable());
  EXPECT_TRUE(make_composite_reward(R"({"mean": 1, "frozen": 0})", r, {})->differentiable());
  // Through the registry, a spec starting with '{' or '[' is a composite.
  EXPECT_EQ(r.make(R"( {"mean": 1})", {})->name(), R"({"mean":1.0})");
}

TEST(CompositeReward, RejectsMalformedJson) {
  const RewardRegistry r = registry_with_means();
  EXPECT_TRUE(throws_error_containing([&] { make_composite_reward("{\"mean\": }", r, {}); }, "not valid JSON"));
  EXPECT_TRUE(throws_error_containing([&] { make_composite_reward(R"({"mean": "x"})", r, {}); },
                                      "the weight of 'mean' must be a finite number, got \"x\""));
  EXPECT_TRUE(throws_error_containing([&] { make_composite_reward(R"([{"mean": 1, "frozen": 2}])", r, {}); },
                                      "list items must be"));
  EXPECT_TRUE(throws_error_containing([&] { make_composite_reward("{}", r, {}); }, "no rewards"));
  EXPECT_TRUE(throws_error_containing([&] { make_composite_reward(R"([["mean", 1], ["mean", 2]])", r, {}); },
                                      "'mean' appears twice"));
  EXPECT_TRUE(throws_error_containing([&] { make_composite_reward(R"({"nope": 1})", r, {}); }, "unknown reward 'nope'"));
}

}  // namespace
}  // namespace rewardgen
