#include <gtest/gtest.h>

#include <cmath>

#include "io/json_config.h"
#include "schedulers/noise_schedule.h"
#include "schedulers/steps.h"
#include "schedulers/timesteps.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::throws_error_containing;

TEST(NoiseSchedule, ScaledLinearMatchesTheClosedForm) {
  // β_i = (√0.00085 + (√0.012 − √0.00085)·i/999)², ᾱ_t = Π_{i<=t}(1 − β_i), computed in double
  // by hand (Python, tools-free): these are SD 1.x's alphas_cumprod.
  const NoiseSchedule s = make_noise_schedule();
  EXPECT_NEAR(s.alpha_bar(0), 0.99915, 1e-12);  // 1 − β_0 = 1 − 0.00085
  EXPECT_NEAR(s.alpha_bar(1), 0.9982960278384514, 1e-12);
  EXPECT_NEAR(s.alpha_bar(499), 0.27766965045646763, 1e-12);
  EXPECT_NEAR(s.alpha_bar(759), 0.05221292829431003, 1e-12);
  EXPECT_NEAR(s.alpha_bar(999), 0.004660098513077234, 1e-12);
  EXPECT_DOUBLE_EQ(s.alpha_bar(-1), s.alpha_bar(0));  // set_alpha_to_one = false (SD)
  SchedulerConfig one;
  one.set_alpha_to_one = true;
  EXPECT_DOUBLE_EQ(make_noise_schedule(one).alpha_bar(-1), 1.0);
  SchedulerConfig linear;
  linear.beta_schedule = "linear";
  linear.beta_start = 1e-4;
  linear.beta_end = 0.02;
  EXPECT_NEAR(make_noise_schedule(linear).alpha_bar(1), (1 - 1e-4) * (1 - (1e-4 + (0.02 - 1e-4) / 999)), 1e-15);
  EXPECT_TRUE(throws_error_containing([&] { s.alpha_bar(1000); }, "timestep 1000 is outside [0, 1000)"));
}

TEST(NoiseSchedule, PredictionConversionsRoundTrip) {
  at::manual_seed(0);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x0 = at::randn({3, 4, 2, 2}, at::kDouble), eps = at::randn({3, 4, 2, 2}, at::kDouble);
  const at::Tensor t = at::tensor({10, 500, 990});
  const at::Tensor ab = s.alpha_bar(t, x0);
  EXPECT_EQ(ab.sizes(), (at::IntArrayRef{3, 1, 1, 1}));
  const at::Tensor x_t = add_noise(s, x0, eps, t);
  for (PredictionType type : {PredictionType::epsilon, PredictionType::v_prediction, PredictionType::sample}) {
    const X0Eps back = x0_and_eps(type, model_output_for(type, x0, eps, ab), x_t, ab);
    EXPECT_TRUE(at::allclose(back.x0, x0, 1e-9, 1e-9)) << to_string(type);
    EXPECT_TRUE(at::allclose(back.eps, eps, 1e-9, 1e-9)) << to_string(type);
  }
  // v = √ᾱ ε − √(1−ᾱ) x₀ by hand for one element.
  const double a = s.alpha_bar(500);
  EXPECT_NEAR(v_target(x0, eps, ab)[1][0][0][0].item<double>(),
              std::sqrt(a) * eps[1][0][0][0].item<double>() - std::sqrt(1 - a) * x0[1][0][0][0].item<double>(), 1e-12);
  EXPECT_NEAR(score_from_eps(eps, ab)[2][1][1][0].item<double>(),
              -eps[2][1][1][0].item<double>() / std::sqrt(1 - s.alpha_bar(990)), 1e-12);
}

TEST(Ddim, EtaZeroIsDeterministicAndFollowsTheForwardProcessWhenThePredictionIsExact) {
  at::manual_seed(1);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x0 = at::randn({2, 4, 3, 3}, at::kDouble), eps = at::randn({2, 4, 3, 3}, at::kDouble);
  const int64_t t = 801, t_prev = 601;
  const at::Tensor x_t = add_noise(s, x0, eps, at::full({2}, t, at::kLong));
  const StepOutput out = ddim_step(s, t, t_prev, eps, x_t, 0.0, at::Tensor());
  EXPECT_FALSE(out.log_prob.defined());
  // η = 0 with the exact ε: x_{t_prev} = √ᾱ_prev x₀ + √(1−ᾱ_prev) ε, i.e. add_noise at t_prev.
  EXPECT_TRUE(at::allclose(out.prev_sample, add_noise(s, x0, eps, at::full({2}, t_prev, at::kLong)), 1e-10, 1e-10));
  EXPECT_TRUE(at::allclose(out.pred_original_sample, x0, 1e-10, 1e-10));
  // Running the chain to the end recovers x₀ (the final ᾱ is ᾱ_0 for SD, so one more step: ᾱ=1).
  SchedulerConfig to_one;
  to_one.set_alpha_to_one = true;
  const NoiseSchedule s1 = make_noise_schedule(to_one);
  at::Tensor x = x_t;
  for (int64_t step = t; step >= 1; step -= 200) {
    const int64_t prev = step - 200;
    x = ddim_step(s1, step, prev, eps, x, 0.0, at::Tensor()).prev_sample;  // ε stays exact along the path
  }
  EXPECT_TRUE(at::allclose(x, x0, 1e-9, 1e-9));
}

TEST(Ddim, LogProbOfASampledTransitionMatchesTheClosedForm) {
  at::manual_seed(2);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x_t = at::randn({2, 4, 2, 2}, at::kDouble), out = at::randn({2, 4, 2, 2}, at::kDouble);
  const at::Tensor z = at::randn({2, 4, 2, 2}, at::kDouble);
  const int64_t t = 501, t_prev = 481;
  const StepOutput step = ddim_step(s, t, t_prev, out, x_t, 1.0, z);
  // σ by hand, Eq. (16) with η = 1.
  const double a_t = s.alpha_bar(t), a_p = s.alpha_bar(t_prev);
  const double sigma = std::sqrt((1 - a_p) / (1 - a_t)) * std::sqrt(1 - a_t / a_p);
  // x_prev − μ = σ z, so log N = mean over dims of (−z²/2 − log σ − ½ log 2π).
  const at::Tensor expected = (-z.pow(2) / 2 - std::log(sigma) - 0.5 * std::log(2 * M_PI)).flatten(1).mean(1);
  EXPECT_TRUE(at::allclose(step.log_prob, expected, 1e-10, 1e-10));
  EXPECT_TRUE(at::allclose(ddim_log_prob(s, t, t_prev, out, x_t, 1.0, step.prev_sample), expected, 1e-10, 1e-10));
  // The mean: √ᾱ_prev x̂₀ + √(1 − ᾱ_prev − σ²) ε̂ with x̂₀ from Eq. (12).
  const at::Tensor x0 = (x_t - std::sqrt(1 - a_t) * out) / std::sqrt(a_t);
  const at::Tensor mean = std::sqrt(a_p) * x0 + std::sqrt(1 - a_p - sigma * sigma) * out;
  EXPECT_TRUE(at::allclose(step.prev_sample, mean + sigma * z, 1e-10, 1e-10));
  EXPECT_TRUE(throws_error_containing([&] { ddim_step(s, 481, 501, out, x_t, 1.0, z); }, "must go down in time"));
  EXPECT_TRUE(throws_error_containing([&] { ddim_step(s, t, t_prev, out, x_t, 1.0, at::Tensor()); }, "needs noise"));
}

TEST(Ddpm, PosteriorMeanAndVarianceByHand) {
  at::manual_seed(3);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x_t = at::randn({1, 4, 2, 2}, at::kDouble), eps = at::randn({1, 4, 2, 2}, at::kDouble);
  const GaussianTransition g = ddpm_transition(s, 999, 979, eps, x_t);
  const double a_t = s.alpha_bar(999), a_p = s.alpha_bar(979), alpha = a_t / a_p, beta = 1 - alpha;
  const at::Tensor x0 = (x_t - std::sqrt(1 - a_t) * eps) / std::sqrt(a_t);
  EXPECT_TRUE(at::allclose(g.mean, std::sqrt(a_p) * beta / (1 - a_t) * x0 + std::sqrt(alpha) * (1 - a_p) / (1 - a_t) * x_t));
  EXPECT_NEAR(g.std * g.std, beta * (1 - a_p) / (1 - a_t), 1e-15);
  // The last step (t_prev < 0) returns x̂₀ without noise.
  const StepOutput last = ddpm_step(s, 19, -1, eps, x_t, at::Tensor());
  EXPECT_TRUE(at::allclose(last.prev_sample, last.pred_original_sample, 1e-12, 1e-12));
}

TEST(Lcm, BoundaryConditionsAndScalings) {
  // c_skip(t) = σ_d² / ((10t)² + σ_d²), σ_d = 0.5  ->  t = 1: 0.25/100.25; c_out = 10/√100.25.
  EXPECT_DOUBLE_EQ(lcm_boundary_scalings(0).c_skip, 1.0);
  EXPECT_DOUBLE_EQ(lcm_boundary_scalings(0).c_out, 0.0);
  EXPECT_NEAR(lcm_boundary_scalings(1).c_skip, 0.25 / 100.25, 1e-15);
  EXPECT_NEAR(lcm_boundary_scalings(1).c_out, 10 / std::sqrt(100.25), 1e-15);
  EXPECT_NEAR(lcm_boundary_scalings(999).c_skip, 0.25 / (9990.0 * 9990.0 + 0.25), 1e-18);
  // At t = 0 the consistency function is the identity whatever the network says.
  const NoiseSchedule s = make_noise_schedule();
  at::manual_seed(4);
  const at::Tensor x = at::randn({1, 4, 2, 2}, at::kDouble), junk = at::randn({1, 4, 2, 2}, at::kDouble);
  EXPECT_TRUE(at::allclose(lcm_step(s, 0, -1, junk, x, at::Tensor()).prev_sample, x));
}

TEST(Lcm, MultistepStepAndItsLogProb) {
  at::manual_seed(5);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x_t = at::randn({2, 4, 2, 2}, at::kDouble), out = at::randn({2, 4, 2, 2}, at::kDouble);
  const at::Tensor z = at::randn({2, 4, 2, 2}, at::kDouble);
  const StepOutput step = lcm_step(s, 759, 499, out, x_t, z);
  const double a_t = s.alpha_bar(759), a_p = s.alpha_bar(499);
  const LcmScalings c = lcm_boundary_scalings(759);
  const at::Tensor f = c.c_skip * x_t + c.c_out * (x_t - std::sqrt(1 - a_t) * out) / std::sqrt(a_t);
  EXPECT_TRUE(at::allclose(step.pred_original_sample, f, 1e-10, 1e-10));
  EXPECT_TRUE(at::allclose(step.prev_sample, std::sqrt(a_p) * f + std::sqrt(1 - a_p) * z, 1e-10, 1e-10));
  const double sigma = std::sqrt(1 - a_p);
  const at::Tensor expected = (-z.pow(2) / 2 - std::log(sigma) - 0.5 * std::log(2 * M_PI)).flatten(1).mean(1);
  EXPECT_TRUE(at::allclose(step.log_prob, expected, 1e-10, 1e-10));
  EXPECT_TRUE(at::allclose(lcm_log_prob(s, 759, 499, out, x_t, step.prev_sample), expected, 1e-10, 1e-10));
  const StepOutput last = lcm_step(s, 259, -1, out, x_t, at::Tensor());
  EXPECT_FALSE(last.log_prob.defined());
  EXPECT_TRUE(at::equal(last.prev_sample, last.pred_original_sample));
}

TEST(Timesteps, MatchDiffusersSchedules) {
  const SchedulerConfig sd;  // steps_offset 1, T 1000, original_inference_steps 50
  const auto leading = ddim_timesteps(sd, 50);
  EXPECT_EQ(leading.front(), 981);
  EXPECT_EQ(leading[1], 961);
  EXPECT_EQ(leading.back(), 1);
  EXPECT_EQ(ddim_prev_timestep(sd, 1, 50), -19);
  EXPECT_EQ(ddim_timesteps(sd, 4, "trailing"), (std::vector<int64_t>{999, 749, 499, 249}));
  // T/n = 62.5: numpy rounds 937.5 -> 938 and 812.5 -> 812 (half to even).
  const auto trailing16 = ddim_timesteps(sd, 16, "trailing");
  EXPECT_EQ(trailing16[1], 937);
  EXPECT_EQ(trailing16[3], 811);
  EXPECT_EQ(ddim_timesteps(sd, 3, "linspace"), (std::vector<int64_t>{999, 500, 0}));  // 499.5 -> 500 (even)
  // LCM: grid 999, 979, …, 19; ⌊linspace(0, 50, n, endpoint=False)⌋.
  EXPECT_EQ(lcm_timesteps(sd, 4), (std::vector<int64_t>{999, 759, 499, 259}));
  EXPECT_EQ(lcm_timesteps(sd, 1), (std::vector<int64_t>{999}));
  EXPECT_EQ(lcm_timesteps(sd, 8), (std::vector<int64_t>{999, 879, 759, 639, 499, 379, 259, 139}));
  EXPECT_TRUE(throws_error_containing([&] { lcm_timesteps(sd, 51); }, "LCM sampling steps must be in [1, original_inference_steps = 50]"));
  // RLCM's rule: every ⌊50/n⌋-th grid entry (docs/rlcm.md).
  EXPECT_EQ(lcm_timesteps(sd, 4, "rlcm"), (std::vector<int64_t>{999, 759, 519, 279}));
  EXPECT_EQ(lcm_timesteps(sd, 8, "rlcm"), (std::vector<int64_t>{999, 879, 759, 639, 519, 399, 279, 159}));
  EXPECT_EQ(lcm_timesteps(sd, 1, "rlcm"), (std::vector<int64_t>{999}));
  EXPECT_TRUE(throws_error_containing([&] { lcm_timesteps(sd, 4, "linear"); }, "unknown LCM timestep rule 'linear'"));
  // Started at 759: the grid cut to 759, 739, …, 19 (38 entries), then the same rules.
  EXPECT_EQ(lcm_timesteps(sd, 1, "diffusers", 759), (std::vector<int64_t>{759}));
  EXPECT_EQ(lcm_timesteps(sd, 2, "diffusers", 759), (std::vector<int64_t>{759, 379}));
  EXPECT_EQ(lcm_timesteps(sd, 4, "diffusers", 759), (std::vector<int64_t>{759, 579, 379, 199}));  // ⌊0, 9.5, 19, 28.5⌋
  EXPECT_EQ(lcm_timesteps(sd, 4, "rlcm", 759), (std::vector<int64_t>{759, 579, 399, 219}));       // every 9th
  EXPECT_EQ(lcm_timesteps(sd, 4, "diffusers", 770), lcm_timesteps(sd, 4, "diffusers", 759));  // between grid entries
  EXPECT_EQ(lcm_timesteps(sd, 4, "diffusers", 999), lcm_timesteps(sd, 4));
  EXPECT_TRUE(throws_error_containing([&] { lcm_timesteps(sd, 2, "diffusers", 19); }, "LCM sampling from timestep 19 has 1 grid entries"));
  EXPECT_TRUE(throws_error_containing([&] { ddim_timesteps(sd, 0); }, "must be in [1, 1000]"));
}

TEST(Timesteps, AnExplicitListIsInRangeAndStrictlyDescending) {
  EXPECT_NO_THROW(check_timestep_list({759, 499, 259, 19}, 1000, "list"));
  EXPECT_NO_THROW(check_timestep_list({0}, 1000, "list"));
  EXPECT_TRUE(throws_error_containing([&] { check_timestep_list({}, 1000, "--timesteps"); }, "--timesteps is empty"));
  EXPECT_TRUE(throws_error_containing([&] { check_timestep_list({1000, 500}, 1000, "--timesteps"); },
                                      "--timesteps holds 1000, outside [0, 1000)"));
  EXPECT_TRUE(throws_error_containing([&] { check_timestep_list({500, -1}, 1000, "L"); }, "L holds -1"));
  EXPECT_TRUE(throws_error_containing([&] { check_timestep_list({759, 759}, 1000, "L"); },
                                      "L must be strictly descending, got 759 then 759"));
}

TEST(Timesteps, AFirstTimestepIsMinusOneOrATimestep) {
  EXPECT_NO_THROW(check_first_timestep(-1, 1000, "F"));
  EXPECT_NO_THROW(check_first_timestep(0, 1000, "F"));
  EXPECT_NO_THROW(check_first_timestep(999, 1000, "F"));
  EXPECT_TRUE(throws_error_containing([&] { check_first_timestep(1000, 1000, "--first-timestep"); },
                                      "--first-timestep 1000 must be -1 (the whole grid) or in [0, 1000)"));
  EXPECT_TRUE(throws_error_containing([&] { check_first_timestep(-2, 1000, "F"); }, "F -2 must be -1"));
  // The shipped LCM's start is a grid entry, so every rule's list starts there.
  EXPECT_EQ(lcm_timesteps(SchedulerConfig{}, 3, "rlcm", kWorldLcmFirstTimestep).front(), kWorldLcmFirstTimestep);
}

TEST(Guidance, CfgAndTheLcmEmbedding) {
  const at::Tensor u = at::tensor({1.0, 2.0}), c = at::tensor({3.0, 1.0});
  EXPECT_TRUE(at::allclose(classifier_free_guidance(u, c, 7.5), at::tensor({1.0 + 7.5 * 2, 2.0 - 7.5})));
  // dim 6: half = 3, freqs = 10000^(−i/2) = 1, 0.01, 0.0001; w = 0.5 -> angles 500, 5, 0.05.
  const at::Tensor emb = guidance_scale_embedding(at::tensor({0.5f}), 6);
  const at::Tensor expected = at::tensor({std::sin(500.0), std::sin(5.0), std::sin(0.05), std::cos(500.0),
                                          std::cos(5.0), std::cos(0.05)}, at::kFloat).view({1, 6});
  EXPECT_TRUE(at::allclose(emb, expected, 1e-4, 1e-5)) << emb;
  EXPECT_EQ(guidance_scale_embedding(at::tensor({1.f, 2.f}), 7).sizes(), (at::IntArrayRef{2, 7}));  // odd: zero pad
}

TEST(SchedulerConfig, ReadsADiffusersSchedulerConfig) {
  const Json j = Json::parse(R"({"_class_name": "DDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
    "set_alpha_to_one": false, "steps_offset": 1})");
  SchedulerConfig c;
  ConfigReader r(j, "scheduler/config.json");
  read_scheduler_config(r, c);
  EXPECT_EQ(c.prediction_type, PredictionType::v_prediction);
  EXPECT_EQ(r.unknown_keys(), (std::vector<std::string>{"clip_sample"}));  // "_class_name" is metadata
  const Json bad = Json::parse(R"({"prediction_type": "noise"})");
  ConfigReader rb(bad, "s.json");
  EXPECT_TRUE(throws_error_containing([&] { read_scheduler_config(rb, c); }, "s.json: key 'prediction_type' must be one of"));
}

// Counts and scales far beyond any published scheduler are refused before a schedule is built (a
// 10^12-step schedule would be allocated first), and so is an offset past the last timestep.
TEST(SchedulerConfig, AbsurdCountsAndOffsetsAreRefusedNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"num_train_timesteps": 1000000000000})", "key 'num_train_timesteps' must be [2, 100000]"},
      {R"({"beta_start": 1.5})", "key 'beta_start' must be (0, 1)"},
      {R"({"timestep_scaling": 1e300})", "key 'timestep_scaling' must be (0, 10000]"},
      {R"({"num_train_timesteps": 1000, "steps_offset": 1000})", "steps_offset 1000 must be below num_train_timesteps 1000"},
      {R"({"beta_start": 0.5, "beta_end": 0.012})", "s.json: beta_start 0.5 is above beta_end 0.012"}};
  for (const auto& [text, message] : cases) {
    const Json j = Json::parse(text);
    ConfigReader r(j, "s.json");
    SchedulerConfig c;
    EXPECT_TRUE(throws_error_containing([&] { read_scheduler_config(r, c); }, message)) << text;
  }
}

}  // namespace
}  // namespace rewardgen
