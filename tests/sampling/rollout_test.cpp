#include "sampling/rollout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <functional>
#include <gtest/gtest.h>

#include "core/log.h"
#include "io/json_config.h"
#include "models/diffusers_io.h"
#include "models/recompute.h"
#include "sampling/text_to_image.h"
#include "schedulers/steps.h"
#include "test_util.h"
#include "tiny_models.h"

namespace rewardgen {
namespace {

using testing::throws_error_containing;

TEST(PerSampleSteps, EqualTheScalarStepSampleBySample) {
  at::manual_seed(11);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x = at::randn({3, 4, 2, 2}, at::kDouble), out = at::randn({3, 4, 2, 2}, at::kDouble);
  const at::Tensor t = at::tensor({999, 500, 21}), t_prev = at::tensor({749, 480, -1});
  const at::Tensor eta = at::tensor({0.0, 0.5, 1.0}, at::kDouble);
  const Transition ddim = ddim_transition(s, t, t_prev, out, x, eta);
  const Transition ddpm = ddpm_transition(s, t, t_prev, out, x);
  const Transition lcm = lcm_transition(s, t, t_prev, out, x);
  for (int64_t b = 0; b < 3; ++b) {
    const at::Tensor xb = x.narrow(0, b, 1), ob = out.narrow(0, b, 1);
    const int64_t tb = t[b].item<int64_t>(), pb = t_prev[b].item<int64_t>();
    const GaussianTransition g = ddim_transition(s, tb, pb, ob, xb, eta[b].item<double>());
    EXPECT_TRUE(at::allclose(ddim.mean.narrow(0, b, 1), g.mean, 1e-12, 1e-12)) << b;
    EXPECT_NEAR(ddim.std[b].item<double>(), g.std, 1e-15) << b;
    const GaussianTransition p = ddpm_transition(s, tb, pb, ob, xb);
    EXPECT_TRUE(at::allclose(ddpm.mean.narrow(0, b, 1), p.mean, 1e-12, 1e-12)) << b;
    EXPECT_NEAR(ddpm.std[b].item<double>(), p.std, 1e-15) << b;
    const GaussianTransition l = lcm_transition(s, tb, pb, ob, xb);
    EXPECT_TRUE(at::allclose(lcm.mean.narrow(0, b, 1), l.mean, 1e-12, 1e-12)) << b;
    EXPECT_NEAR(lcm.std[b].item<double>(), l.std, 1e-15) << b;
  }
  EXPECT_EQ(ddim.std[0].item<double>(), 0.0);  // η = 0: deterministic
  // A zero σ gives log-prob 0 for that row, the others the closed form.
  const at::Tensor z = at::randn({3, 4, 2, 2}, at::kDouble);
  const StepOutput step = sample_transition(ddim, z);
  EXPECT_EQ(step.log_prob[0].item<double>(), 0.0);
  const double sigma = ddim.std[1].item<double>();
  EXPECT_NEAR(step.log_prob[1].item<double>(),
              (-z[1].pow(2) / 2 - std::log(sigma) - 0.5 * std::log(2 * M_PI)).mean().item<double>(), 1e-10);
  EXPECT_TRUE(throws_error_containing([&] { ddim_transition(s, t_prev.clamp_min(0), t, out, x, eta); }, "must go down in time"));
}

class RolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(3);
    unet = std::make_shared<UNet2DConditionModel>(testing::tiny_unet_config());
    cond.cond = at::randn({2, 4, unet->config().cross_dim(0)});
    cond.uncond = at::randn({2, 4, unet->config().cross_dim(0)});
    x_T = at::randn({2, unet->config().in_channels, 8, 8});
  }
  RolloutOptions ddim_options() const {
    RolloutOptions o;
    o.timesteps = {999, 749, 499, 249};
    o.eta = at::tensor({0.2, 1.0, 0.5, 0.0, 1.0, 1.0, 0.3, 0.7}, at::kDouble).view({4, 2});
    o.guidance = at::tensor({1.0, 3.0}, at::kDouble);
    return o;
  }
  std::shared_ptr<UNet2DConditionModel> unet;
  NoiseSchedule schedule = make_noise_schedule();
  Conditioning cond;
  at::Tensor x_T;
};

TEST_F(RolloutTest, LogProbsEqualTheSchedulersAndReScoreExactly) {
  at::NoGradGuard no_grad;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const RolloutOptions o = ddim_options();
  const Rollout r = rollout(*unet, schedule, cond, x_T, o, g);
  ASSERT_EQ(r.steps.size(), 4u);
  EXPECT_EQ(r.nfe, 8);  // CFG on one sample: every call is the batched pair
  for (size_t i = 0; i < r.steps.size(); ++i) {
    const RolloutStep& s = r.steps[i];
    EXPECT_EQ(s.t_prev, i + 1 < 4 ? o.timesteps[i + 1] : -1);
    const at::Tensor t = at::full({2}, s.t, at::kLong), prev = at::full({2}, s.t_prev, at::kLong);
    // The scheduler's own transition at the stored state, with the same guided output.
    const at::Tensor out = guided_model_output(*unet, s.x_t, t, cond, o.guidance);
    const Transition tr = ddim_transition(schedule, t, prev, out, s.x_t, o.eta[static_cast<int64_t>(i)]);
    EXPECT_TRUE(at::allclose(s.log_prob, gaussian_log_prob(s.x_prev, tr.mean, tr.std), 1e-5, 1e-5)) << i;
    const at::Tensor rescored = transition_log_prob(*unet, schedule, "ddim", cond, o.guidance, t, prev, s.x_t, s.x_prev,
                                                    o.eta[static_cast<int64_t>(i)]);
    EXPECT_TRUE(at::allclose(s.log_prob, rescored, 1e-5, 1e-5)) << i;
  }
  // Sample 1 at step 1 has η = 0: a deterministic step, log-prob 0 by convention.
  EXPECT_EQ(r.steps[1].log_prob[1].item<float>(), 0.f);
  // The same seed gives the same rollout.
  at::Generator again = at::make_generator<at::CPUGeneratorImpl>(5);
  EXPECT_TRUE(at::equal(rollout(*unet, schedule, cond, x_T, o, again).sample, r.sample));
}

TEST_F(RolloutTest, GradientModesDecideWhichStepsReachTheInput) {
  auto input_grad = [&](GradientMode mode, int64_t k) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
    RolloutOptions o = ddim_options();
    o.gradient = mode;
    o.gradient_k = k;
    const at::Tensor x = x_T.clone().requires_grad_(true);
    const Rollout r = rollout(*unet, schedule, cond, x, o, g);
    int with_grad = 0;
    for (const RolloutStep& s : r.steps) with_grad += s.with_grad;
    if (!r.x0.requires_grad()) return std::make_pair(with_grad, at::Tensor());
    r.x0.sum().backward();
    return std::make_pair(with_grad, x.grad());
  };
  const auto all = input_grad(GradientMode::all, 0);
  EXPECT_EQ(all.first, 4);
  ASSERT_TRUE(all.second.defined());
  EXPECT_GT(all.second.abs().sum().item<double>(), 0);
  const auto last = input_grad(GradientMode::last_k, 2);
  EXPECT_EQ(last.first, 2);
  EXPECT_FALSE(last.second.defined());  // the first two steps ran without grad: x_T is cut off
  EXPECT_EQ(input_grad(GradientMode::from_step, 1).first, 3);
  EXPECT_EQ(input_grad(GradientMode::none, 0).first, 0);
  RolloutOptions bad = ddim_options();
  bad.gradient = GradientMode::last_k;
  bad.gradient_k = 5;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  EXPECT_TRUE(throws_error_containing([&] { rollout(*unet, schedule, cond, x_T, bad, g); }, "last_k needs 1 <= k <= 4"));
}

TEST_F(RolloutTest, RecomputationGivesTheSameGradients) {
  auto grads = [&](bool recompute) {
    unet->zero_grad();
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
    RolloutOptions o = ddim_options();
    o.gradient = GradientMode::all;
    o.recompute = recompute;
    const at::Tensor x = x_T.clone().requires_grad_(true);
    const Rollout r = rollout(*unet, schedule, cond, x, o, g);
    (r.x0.pow(2).mean() + r.sample.mean()).backward();
    std::vector<at::Tensor> out{x.grad().clone()};
    for (const auto& p : unet->parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    return out;
  };
  const std::vector<at::Tensor> plain = grads(false), recomputed = grads(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  double total = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(at::allclose(plain[i], recomputed[i], 1e-5, 1e-6)) << "tensor " << i;
    total += plain[i].abs().sum().item<double>();
  }
  EXPECT_GT(total, 0);
}

// R0 and DRaFT backpropagate a reward through the whole LCM multistep rollout (docs/r0.md, "From the
// LCM"): its gradient in x_T and in the UNet's weights against central differences, in double, the
// noise re-injected after each consistency step held fixed by the generator's seed.
TEST(LcmRollout, GradientThroughEveryStepMatchesFiniteDifferences) {
  at::manual_seed(4);
  auto unet = std::make_shared<UNet2DConditionModel>(testing::tiny_unet_config(8));
  unet->to(at::kDouble);
  const NoiseSchedule schedule = make_noise_schedule();
  Conditioning cond;
  cond.cond = at::randn({2, 4, unet->config().cross_dim(0)}, at::kDouble);
  cond.uncond = at::randn({2, 4, unet->config().cross_dim(0)}, at::kDouble);
  const at::Tensor x_T = at::randn({2, unet->config().in_channels, 8, 8}, at::kDouble);
  const at::Tensor reward_weights = at::randn_like(x_T);  // a linear reward on the last f
  RolloutOptions o;
  o.sampler = "lcm";
  o.timesteps = {759, 579, 379, 199};
  o.guidance = at::scalar_tensor(3.0, at::kDouble);
  o.gradient = GradientMode::all;
  auto reward = [&](const at::Tensor& x) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(7);
    const Rollout r = rollout(*unet, schedule, cond, x, o, g);
    EXPECT_EQ(r.steps.size(), 4u);
    return (r.x0 * reward_weights).sum();
  };
  const at::Tensor x = x_T.clone().requires_grad_(true);
  unet->zero_grad();
  reward(x).backward();
  // The central difference of the reward at `start` while `shift(h)` moves the noise or the weights
  // by h along one direction (and back).
  const at::Tensor start = x_T.clone();
  const double eps = 1e-5;
  auto central = [&](const std::function<void(double)>& shift) {
    at::NoGradGuard no_grad;
    shift(eps);
    const double up = reward(start).item<double>();
    shift(-2 * eps);
    const double down = reward(start).item<double>();
    shift(eps);
    return (up - down) / (2 * eps);
  };
  // In the starting noise, along a random direction.
  const at::Tensor v = at::randn_like(x_T);
  const double fd_x = central([&](double step) { start.add_(v, step); });
  const double analytic_x = (x.grad() * v).sum().item<double>();
  EXPECT_NEAR(analytic_x, fd_x, 1e-6 * std::abs(fd_x) + 1e-9);
  EXPECT_GT(std::abs(fd_x), 1e-6);
  // In the weights, along a random direction over all of them: the path of R0's update.
  std::vector<at::Tensor> params, directions;
  double analytic_w = 0;
  for (const auto& p : unet->parameters()) {
    params.push_back(p);
    directions.push_back(at::randn_like(p));
    if (p.grad().defined()) analytic_w += (p.grad() * directions.back()).sum().item<double>();
  }
  const double fd_w = central([&](double step) {
    for (size_t i = 0; i < params.size(); ++i) params[i].add_(directions[i], step);
  });
  EXPECT_NEAR(analytic_w, fd_w, 1e-6 * std::abs(fd_w) + 1e-9);
  EXPECT_GT(std::abs(fd_w), 1e-6);
}

TEST(Recompute, ParametersGetGradientsWhenNoInputNeedsThem) {
  const at::Tensor w = at::randn({3, 3}).requires_grad_(true);
  const at::Tensor x = at::randn({2, 3});  // a constant, as x_T is
  const at::Tensor y = recompute_in_backward([&w](const std::vector<at::Tensor>& in) { return at::matmul(in[0], w).tanh(); }, {x});
  y.sum().backward();
  const at::Tensor expected = at::matmul(x.t(), 1 - at::matmul(x, w).tanh().pow(2)).detach();
  EXPECT_TRUE(at::allclose(w.grad(), expected, 1e-5, 1e-6));
}

// An LCM recipe's first_timestep cuts the rule's grid for every step count, survives a save and
// load, and belongs to the LCM sampler alone.
TEST(SamplerRecipe, FirstTimestepCutsTheLcmGridAtEveryStepCount) {
  testing::TempDir tmp;
  SchedulerConfig c;
  c.recipe = {"lcm", 4, {}, "leading", 0.0, 3.0, "sample", 759};
  save_scheduler_config(tmp.file("scheduler"), c);
  const SchedulerConfig back = load_scheduler_config(tmp.file("scheduler"), Logger(LogLevel::warn));
  EXPECT_EQ(back.recipe.first_timestep, 759);
  SamplerOptions o = sampler_options(back.recipe);
  EXPECT_EQ(rollout_options(o, back).timesteps, (std::vector<int64_t>{759, 579, 379, 199}));
  o.steps = 2;
  EXPECT_EQ(rollout_options(o, back).timesteps, (std::vector<int64_t>{759, 379}));
  o.timestep_spacing = "rlcm";
  o.steps = 4;
  EXPECT_EQ(rollout_options(o, back).timesteps, (std::vector<int64_t>{759, 579, 399, 219}));
  o.first_timestep = 1000;  // the schedule's T: a cut that would keep the whole grid is refused, not ignored
  EXPECT_TRUE(testing::throws_error_containing([&] { rollout_options(o, back); },
                                               "the sampler's first_timestep 1000 must be -1 (the whole grid) or in [0, 1000)"));
  o.first_timestep = 759;
  o.sampler = "ddim";
  o.timestep_spacing = "leading";
  EXPECT_TRUE(testing::throws_error_containing([&] { validate(o); }, "first_timestep (759) cuts the LCM's grid; the ddim sampler has none"));
  // A recipe without it writes no key: the folders shipped before it stay byte-identical.
  c.recipe.first_timestep = -1;
  save_scheduler_config(tmp.file("plain"), c);
  EXPECT_FALSE(load_json_file(tmp.file("plain/scheduler_config.json")).at("rewardgen_recipe").contains("first_timestep"));
}

}  // namespace
}  // namespace rewardgen

namespace rewardgen {
namespace {

TEST(SamplerRecipe, RoundTripsThroughTheSchedulerConfigAndRejectsBadValues) {
  testing::TempDir tmp;
  SchedulerConfig c;
  c.recipe = {"ddim", 4, {999, 749, 499, 249}, "trailing", 0.0, 1.0, "x0"};
  save_scheduler_config(tmp.file("scheduler"), c);
  const SchedulerConfig back = load_scheduler_config(tmp.file("scheduler"), Logger(LogLevel::warn));
  EXPECT_EQ(back.recipe.sampler, "ddim");
  EXPECT_EQ(back.recipe.timesteps, c.recipe.timesteps);
  EXPECT_EQ(back.recipe.output, "x0");
  // The options it gives sample the explicit list, t_prev the next entry and −1 after the last.
  const RolloutOptions ro = rollout_options(sampler_options(back.recipe), back);
  EXPECT_EQ(ro.timesteps, c.recipe.timesteps);
  EXPECT_TRUE(ro.prev_timesteps.empty());
  Json j = load_json_file(tmp.file("scheduler/scheduler_config.json"));
  j["rewardgen_recipe"]["timesteps"] = {999, 1000, 3, 2};
  save_json_file(tmp.file("scheduler/scheduler_config.json"), j);
  EXPECT_TRUE(testing::throws_error_containing([&] { load_scheduler_config(tmp.file("scheduler"), Logger(LogLevel::warn)); },
                                               "rewardgen_recipe.timesteps holds 1000"));
  j["rewardgen_recipe"]["timesteps"] = {999, 259, 499, 19};  // a list the rollout would refuse only when sampling
  save_json_file(tmp.file("scheduler/scheduler_config.json"), j);
  EXPECT_TRUE(testing::throws_error_containing([&] { load_scheduler_config(tmp.file("scheduler"), Logger(LogLevel::warn)); },
                                               "rewardgen_recipe.timesteps must be strictly descending, got 259 then 499"));
  j["rewardgen_recipe"]["timesteps"] = {999, 500};
  save_json_file(tmp.file("scheduler/scheduler_config.json"), j);
  EXPECT_TRUE(testing::throws_error_containing([&] { load_scheduler_config(tmp.file("scheduler"), Logger(LogLevel::warn)); },
                                               "has 2 timesteps for steps = 4"));
  j["rewardgen_recipe"]["timesteps"] = {999, 749, 499, 249};
  j["rewardgen_recipe"]["first_timestep"] = 1000;
  save_json_file(tmp.file("scheduler/scheduler_config.json"), j);
  EXPECT_TRUE(testing::throws_error_containing([&] { load_scheduler_config(tmp.file("scheduler"), Logger(LogLevel::warn)); },
                                               "rewardgen_recipe.first_timestep 1000 must be -1 (the whole grid) or in [0, 1000)"));
  j["rewardgen_recipe"].erase("first_timestep");
  j["rewardgen_recipe"]["output"] = "latent";
  save_json_file(tmp.file("scheduler/scheduler_config.json"), j);
  EXPECT_TRUE(testing::throws_error_containing([&] { load_scheduler_config(tmp.file("scheduler"), Logger(LogLevel::warn)); },
                                               "output"));
}

}  // namespace
}  // namespace rewardgen
