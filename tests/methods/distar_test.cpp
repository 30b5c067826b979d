// DI* and DI*-KL: the pseudo-Huber distance and its gradient against finite differences, the
// l2 case against SiD's loss written out, the KL variant's stop-gradients, a vanishing divergence
// gradient when the fake score is the reference, the θ-step leaving ψ alone, ψ learning, a short
// run raising a toy reward, resume, the export's recipe, and config errors.
#include "methods/distar.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>

#include "io/run_dir.h"
#include "methods/lcd.h"
#include "methods/train_job.h"
#include "models/diffusers_io.h"
#include "test_util.h"
#include "tiny_models.h"
#include "train/checkpoint.h"
#include "world_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;

TEST(DistarDistance, PseudoHuberGradientMatchesFiniteDifferences) {
  at::manual_seed(1);
  const at::Tensor y = at::randn({2, 3, 2, 2}, at::kDouble);
  for (const std::string distance : {"pseudo_huber", "l2"}) {
    const double c = 0.7, h = 1e-6;
    const at::Tensor analytic = distance_gradient(y, distance, c);
    // d itself, by hand: √(‖y‖² + c²) − c or ‖y‖², per sample.
    const at::Tensor squared = y.pow(2).flatten(1).sum(1);
    const at::Tensor by_hand = distance == "l2" ? squared : (squared + c * c).sqrt() - c;
    EXPECT_TRUE(at::allclose(distance_value(y, distance, c), by_hand, 1e-12, 1e-12)) << distance;
    for (int64_t i = 0; i < y.numel(); i += 5) {
      const at::Tensor e = at::zeros_like(y).flatten().index_put_({i}, 1.0).reshape(y.sizes());
      const at::Tensor numeric = (distance_value(y + h * e, distance, c) - distance_value(y - h * e, distance, c)) / (2 * h);
      const int64_t b = i / (y.numel() / 2);
      EXPECT_NEAR(numeric[b].item<double>(), analytic.flatten()[i].item<double>(), 1e-6) << distance << " element " << i;
    }
  }
  // ‖d′‖ < 1 for the pseudo-Huber distance: a sample's push is bounded, the point of it.
  EXPECT_TRUE((distance_gradient(100.0 * y, "pseudo_huber", 0.7).flatten(1).norm(2, 1) < 1.0).all().item<bool>());
}

// Two smooth "denoisers" of x_t = a x̂₀ + b ε stand in for the networks, so that the gradient
// through x_t into them is part of what is compared.
struct HandCase {
  at::Tensor x0, noise, x_t, fake, reference, weight;
};
HandCase hand_case() {
  at::manual_seed(2);
  HandCase h;
  h.x0 = at::randn({3, 2, 3, 3}, at::kDouble).requires_grad_(true);
  h.noise = at::randn({3, 2, 3, 3}, at::kDouble);
  h.x_t = 0.6 * h.x0 + 0.8 * h.noise;
  h.fake = at::tanh(h.x_t) * 1.1;
  h.reference = 0.5 * h.x_t.pow(2) - 0.2;
  h.weight = at::tensor({1.0, 0.5, 2.0}, at::kDouble);
  return h;
}

// With d(y) = ‖y‖² (d′ = 2y) the generator loss is twice SiD's with α = 1,
// mean_b w_b Σ (D_ref − D_ψ)(D_ψ − x̂₀) (SiD-LSG's α = 1 form), in value and in gradient.
TEST(DistarDivergence, L2IsSidWithAlphaOne) {
  HandCase h = hand_case();
  const at::Tensor ours = divergence_loss({h.x0, h.fake, h.reference, h.weight}, "score", "l2", 0.0);
  const at::Tensor sid = ((h.reference - h.fake) * (h.fake - h.x0)).flatten(1).sum(1).mul(h.weight).mean();
  EXPECT_NEAR(ours.item<double>(), 2 * sid.item<double>(), 1e-12);
  const at::Tensor g_ours = torch::autograd::grad({ours}, {h.x0}, {}, true)[0];
  const at::Tensor g_sid = torch::autograd::grad({sid}, {h.x0})[0];
  EXPECT_TRUE(at::allclose(g_ours, 2 * g_sid, 1e-12, 1e-12));
}

// Diff-Instruct: the gradient is w (D_ψ − D_ref) on x̂₀, nothing through the networks.
TEST(DistarDivergence, KlGradientIsTheDetachedScoreDifference) {
  HandCase h = hand_case();
  const at::Tensor loss = divergence_loss({h.x0, h.fake, h.reference, h.weight}, "kl", "pseudo_huber", 1.0);
  const at::Tensor g = torch::autograd::grad({loss}, {h.x0})[0];
  const at::Tensor expected = (h.fake - h.reference).detach() * h.weight.reshape({3, 1, 1, 1}) / 3.0;
  EXPECT_TRUE(at::allclose(g, expected, 1e-12, 1e-12));
}

// The generator's backward goes through x̂₀: the two terms' gradients there, taken apart and summed,
// give θ the same gradient as the loss's own backward; the logged norms and cosine by hand.
TEST(DistarDivergence, OutputGradientSplitsTheTermsAndGivesTheLossGradient) {
  at::manual_seed(3);
  const at::Tensor theta = at::randn({2, 3}, at::kDouble).requires_grad_();
  const at::Tensor input = at::randn({3, 4}, at::kDouble);
  const at::Tensor target = at::randn({2, 1, 2, 2}, at::kDouble);
  auto x0_of_theta = [&] { return at::matmul(theta, input).tanh().reshape({2, 1, 2, 2}); };  // a "generator"
  auto divergence_of = [](const at::Tensor& x0) { return x0.pow(2).sum(); };                // ∂/∂x̂₀ = 2 x̂₀
  auto reward_term_of = [&](const at::Tensor& x0) { return -3.0 * (x0 * target).sum(); };   // ∂/∂x̂₀ = −3 target

  const at::Tensor x0_direct = x0_of_theta();
  (divergence_of(x0_direct) + reward_term_of(x0_direct)).backward();
  const at::Tensor expected = theta.grad().clone();
  theta.mutable_grad().zero_();

  const at::Tensor x0 = x0_of_theta();
  MetricsWriter::Values values;
  const at::Tensor gradient = output_gradient(x0, divergence_of(x0), reward_term_of(x0), values);
  (x0 * gradient).sum().backward();
  EXPECT_TRUE(at::allclose(theta.grad(), expected, 1e-12, 1e-12));

  const at::Tensor g_div = 2 * x0.detach(), g_reward = -3 * target;
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values[0].first, "output_grad_norm/divergence");
  EXPECT_NEAR(values[0].second, g_div.norm().item<double>(), 1e-12);
  EXPECT_EQ(values[1].first, "output_grad_norm/reward");
  EXPECT_NEAR(values[1].second, g_reward.norm().item<double>(), 1e-12);
  EXPECT_EQ(values[2].first, "output_grad_cosine");
  EXPECT_NEAR(values[2].second, ((g_div * g_reward).sum() / (g_div.norm() * g_reward.norm())).item<double>(), 1e-12);

  // α = 0: no reward term, the divergence's gradient alone.
  MetricsWriter::Values alone;
  const at::Tensor x0_again = x0_of_theta();
  EXPECT_TRUE(at::allclose(output_gradient(x0_again, divergence_of(x0_again), at::Tensor(), alone), g_div, 1e-12, 1e-12));
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].first, "output_grad_norm/divergence");
}

// When the fake score is the reference (same weights, no guidance) y ≡ 0 and the divergence's
// gradient vanishes, through x̂₀ and through the networks' inputs; a perturbed ψ gives one.
TEST(DistarDivergence, GradientVanishesWhenTheFakeScoreIsTheReference) {
  at::manual_seed(4);
  const UNet2DConditionModel reference(testing::tiny_unet_config());
  UNet2DConditionModel fake(testing::tiny_unet_config());
  load_module_weights(fake, module_state(reference), "the reference");
  freeze_base(fake);
  const NoiseSchedule s = make_noise_schedule();
  const at::Tensor x0 = at::randn({2, 4, 8, 8}).requires_grad_(true);
  const at::Tensor noise = at::randn({2, 4, 8, 8}), t = at::tensor({300, 700}, at::kLong), context = at::randn({2, 8, 16});
  auto gradient = [&] {
    const at::Tensor x_t = add_noise(s, x0, noise, t);
    const at::Tensor a = s.alpha_bar(t, x_t);
    const at::Tensor d_fake = x0_and_eps(PredictionType::epsilon, fake.forward(x_t, t, context), x_t, a).x0;
    const at::Tensor d_ref = x0_and_eps(PredictionType::epsilon, reference.forward(x_t, t, context), x_t, a).x0;
    const at::Tensor loss = divergence_loss({x0, d_fake, d_ref, sid_weight(x0, d_ref)}, "score", "pseudo_huber", 0.5);
    return torch::autograd::grad({loss}, {x0})[0];
  };
  const double identical = gradient().abs().max().item<double>();
  {
    at::NoGradGuard no_grad;
    fake.conv_out->weight.add_(0.05 * at::randn_like(fake.conv_out->weight));
  }
  const double perturbed = gradient().abs().max().item<double>();
  // The two networks' contributions cancel to rounding (their backward passes need not sum in the
  // same order), against a gradient of order one once ψ differs.
  EXPECT_GT(perturbed, 1e-2);
  EXPECT_LT(identical, 1e-5 * perturbed) << "identical " << identical << ", perturbed " << perturbed;
}

// The tiny world teacher (the reference) and its LCM (lcm_dir(), the generator's start).
class DistarWorld : public testing::TinyWorldWithLcmTest {
 protected:
  static DistarConfig config() {
    DistarConfig c;
    c.reference_model = dir_->path();
    c.batch_size = 4;
    c.rewards = {{"brightness", 1.0}};
    c.trainer.lr = 1e-3;
    c.trainer.max_steps = 4;
    c.trainer.checkpoint_every = 2;
    c.trainer.eval_every = 0;
    return c;
  }
  // Groups, optimizers and a context as the trainer makes them.
  struct Loop {
    std::vector<ParamGroup> groups;
    std::vector<std::unique_ptr<AdamW>> optimizers;
    at::Generator rng = at::make_generator<at::CPUGeneratorImpl>(9);
    StepContext context(const TrainerConfig& trainer) {
      std::vector<StepContext::Group> step_groups;
      for (size_t i = 0; i < groups.size(); ++i) step_groups.push_back({groups[i].name, optimizers[i].get(), 1.0});
      return StepContext(std::move(step_groups), rng, 0);
    }
  };
  static Loop loop(DistarTask& task, const TrainerConfig& trainer) {
    Loop l;
    l.groups = task.parameter_groups();
    for (const ParamGroup& g : l.groups) {
      AdamWOptions o = trainer.adam;
      o.lr = trainer.lr * g.lr_scale;
      l.optimizers.push_back(std::make_unique<AdamW>(g.parameters, o));
    }
    return l;
  }
};

TEST_F(DistarWorld, GeneratorStepLeavesTheFakeScoreAndItsOptimizerUntouched) {
  const DistarConfig c = config();
  DistarTask task(c, lcm_dir(), log_);
  Loop l = loop(task, c.trainer);
  ASSERT_EQ(l.groups.size(), 2u);
  EXPECT_EQ(l.groups[0].name, "generator");
  EXPECT_EQ(l.groups[1].name, "fake_score");
  StepContext context = l.context(c.trainer);
  task.fake_score_step(context, task.generate(context, false));  // so that ψ's Adam has state
  TensorMap before, after;
  add_module_state(before, "psi/", task.fake_score());
  l.optimizers[1]->save_state(before, "adam/");
  const at::Tensor theta_before = l.groups[0].parameters.front().second.detach().clone();
  const MetricsWriter::Values values = task.generator_step(context, task.generate(context, true));
  add_module_state(after, "psi/", task.fake_score());
  l.optimizers[1]->save_state(after, "adam/");
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, t] : before) EXPECT_TRUE(at::equal(t, after.at(name))) << name;
  EXPECT_FALSE(at::equal(theta_before, l.groups[0].parameters.front().second));  // θ moved
  for (const auto& p : task.fake_score().parameters()) EXPECT_TRUE(p.requires_grad());  // ψ unfrozen after the step
  bool logged = false;
  for (const auto& [name, v] : values) logged = logged || (name == "divergence_loss" && std::isfinite(v));
  EXPECT_TRUE(logged);
}

// ψ learns the generator's samples: its denoising loss on a fixed batch (same x̂₀, t and ε) falls
// after 60 steps on fresh samples of the same, untrained generator. At t* = 100 the random tiny
// generator's x̂₀ is about unit white noise, whose ε is partly predictable from x_t (E[ε | x_t] =
// √(1−ᾱ) x_t: a loss floor of mean ᾱ); at t* = 999 it is noise amplified by 1/√ᾱ_999 ≈ 15, whose
// ε no network can predict (a floor of about 1).
TEST_F(DistarWorld, FakeScoreLossFallsOnAFixedGenerator) {
  DistarConfig c = config();
  c.t_star = 100;
  c.generator.timesteps = {100};
  c.trainer.lr = 3e-3;
  DistarTask task(c, lcm_dir(), log_);
  Loop l = loop(task, c.trainer);
  StepContext context = l.context(c.trainer);
  at::Generator fixed = at::make_generator<at::CPUGeneratorImpl>(5);
  StepContext fixed_context({}, fixed, 0);
  const DistarTask::Generated probe = task.generate(fixed_context, false);
  auto probe_loss = [&] {
    at::NoGradGuard no_grad;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(6);
    StepContext draws({}, g, 0);
    double total = 0;
    for (int i = 0; i < 4; ++i) total += task.fake_score_loss(probe, draws).item<double>();
    return total / 4;
  };
  const double before = probe_loss();
  for (int i = 0; i < 60; ++i) task.fake_score_step(context, task.generate(context, false));
  const double after = probe_loss();
  EXPECT_LT(after, 0.8 * before) << "before " << before << ", after " << after;
}

TEST_F(DistarWorld, ResumedRunEqualsTheUninterruptedOne) {
  TempDir runs;
  for (const std::string regularizer : {"score", "kl"}) {
    DistarConfig c = config();
    c.regularizer = regularizer;
    const auto [straight, resumed] = straight_and_resumed([&] { return std::make_unique<DistarTask>(c, lcm_dir(), log_); },
                                                          c.trainer, distar_config_json(c), runs.file(regularizer), 2);
    ASSERT_EQ(straight.size(), resumed.size());
    EXPECT_TRUE(straight.count("distar/fake_score/conv_in.weight"));
    for (const auto& [name, t] : straight) EXPECT_TRUE(at::equal(t, resumed.at(name))) << regularizer << " " << name;
  }
}

// The job trains, raises the reward it is given, and exports a one-step generator whose recipe
// samples as trained (lcm, one step at t*, guidance 3), with no flags.
TEST_F(DistarWorld, AShortRunRaisesTheRewardAndExportsAOneStepRecipe) {
  TempDir runs;
  const std::string config_file = runs.file("distar.json");
  save_json_file(config_file, {{"reference_model", dir_->path()},
                               {"batch_size", 8},
                               {"rewards", {{"brightness", 1.0}}},
                               {"alpha", 100.0},
                               {"t_star", 999},
                               {"eval_limit", 6},
                               {"trainer", {{"max_steps", 16}, {"lr", 1e-3}, {"eval_every", 16}}}});
  TrainJobOptions o;
  o.method = "distar";
  o.config_file = config_file;
  o.model_dir = lcm_dir();
  o.out = runs.file("run");
  o.evaluate = false;
  const TrainJobResult r = run_train_job(o, log_);
  const std::vector<Json> rows = read_metrics(r.run_dir + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 16u);
  const auto [first, last] = testing::first_and_last_means(rows, "reward/brightness", 4);
  EXPECT_GT(last, first + 0.01) << "first steps " << first << ", last steps " << last;
  for (const char* key : {"divergence_loss", "score_distance", "fake_score_loss", "grad_norm/generator", "grad_norm/fake_score",
                          "output_grad_norm/divergence", "output_grad_norm/reward", "output_grad_cosine"})
    EXPECT_TRUE(rows.back().contains(key)) << key;
  EXPECT_TRUE(rows.back().contains("accuracy/overall"));
  const Pipeline p = load_pipeline(r.generator_dir, {}, log_);
  EXPECT_EQ(p.scheduler.recipe.sampler, "lcm");
  EXPECT_EQ(p.scheduler.recipe.steps, 1);
  EXPECT_EQ(p.scheduler.recipe.timesteps, (std::vector<int64_t>{999}));
  EXPECT_EQ(p.scheduler.recipe.guidance_scale, 3.0);
}

// The second start: from the teacher itself (a diffusion model, no guidance embedding) the
// generator is the DDIM x̂₀ at t* without CFG, one UNet call; the export samples it that way.
TEST_F(DistarWorld, AStartFromTheTeacherTrainsAndExportsAOneStepDdimRecipe) {
  TempDir runs;
  const std::string config_file = runs.file("distar.json");
  save_json_file(config_file, {{"reference_model", dir_->path()},
                               {"generator", {{"sampler", "ddim"}}},
                               {"batch_size", 4},
                               {"rewards", {{"brightness", 1.0}}},
                               {"t_star", 799},
                               {"trainer", {{"max_steps", 4}, {"lr", 1e-3}, {"eval_every", 0}}}});
  TrainJobOptions o;
  o.method = "distar";
  o.config_file = config_file;
  o.model_dir = dir_->path();
  o.out = runs.file("run");
  o.evaluate = false;
  const TrainJobResult r = run_train_job(o, log_);
  const std::vector<Json> rows = read_metrics(r.run_dir + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(std::isfinite(rows.back().at("divergence_loss").get<double>()));
  const Pipeline p = load_pipeline(r.generator_dir, {}, log_);
  EXPECT_EQ(p.scheduler.recipe.sampler, "ddim");
  EXPECT_EQ(p.scheduler.recipe.steps, 1);
  EXPECT_EQ(p.scheduler.recipe.timesteps, (std::vector<int64_t>{799}));
  EXPECT_EQ(p.scheduler.recipe.guidance_scale, 1.0);
  // The run folder's config reads back to the same one-call generator.
  const Json written = load_json_file(r.run_dir + "/config.json").at("config");
  ConfigReader again(written, "config.json");
  EXPECT_EQ(read_distar_config(again, "score").generator.guidance, 1.0);
}

// The reward's gradient is raw by default (the paper's α ∂r/∂x); R0's normalisation is an option
// whose keys survive the run folder's config.json.
TEST(DistarConfig, RewardGradientNormalisationIsOffByDefaultAndRoundTrips) {
  // A ConfigReader keeps a reference to its object: every Json below is named.
  const Json empty = Json::object();
  ConfigReader defaults(empty, "distar.json");
  EXPECT_EQ(read_distar_config(defaults, "score").normalization.mode(), GradientNormalization::none);
  const Json batch{{"normalize_gradients", true}, {"normalize_scope", "batch"}, {"normalize_eps", 1e-6}};
  ConfigReader r(batch, "distar.json");
  const DistarConfig c = read_distar_config(r, "score");
  EXPECT_EQ(c.normalization.mode(), GradientNormalization::per_batch);
  const Json written = distar_config_json(c);
  ConfigReader again(written, "config.json");
  const DistarConfig back = read_distar_config(again, "score");
  EXPECT_EQ(back.normalization.mode(), GradientNormalization::per_batch);
  EXPECT_EQ(back.normalization.eps, 1e-6);
  const Json sample = Json::object({{"normalize_gradients", true}});
  ConfigReader per_sample(sample, "distar.json");
  EXPECT_EQ(read_distar_config(per_sample, "kl").normalization.mode(), GradientNormalization::per_sample);
}

TEST_F(DistarWorld, ConfigAndModelErrorsNameTheProblem) {
  auto error = [](const Json& j, const std::string& needle) {
    return testing::throws_error_containing([&] {
      ConfigReader r(j, "distar.json");
      read_distar_config(r, "score");
    }, needle);
  };
  EXPECT_TRUE(error({{"t_min", 500}, {"t_max", 400}}, "t_min 500 > t_max 400"));
  EXPECT_TRUE(error({{"generator", {{"timesteps", {999, 499}}}}}, "set its input timestep with t_star"));
  EXPECT_TRUE(error({{"huber_c", 0.0}}, "huber_c"));
  EXPECT_TRUE(error({{"alpha", NAN}}, "alpha"));
  EXPECT_TRUE(error({{"t_star", 0}}, "t_star"));
  EXPECT_TRUE(error({{"fake_steps", 0}}, "fake_steps"));
  EXPECT_TRUE(error({{"distance", "l1"}}, "distance"));
  EXPECT_TRUE(error({{"rewards", {{"brightness", 0.0}}}}, "needs a reward of positive weight"));
  EXPECT_TRUE(error({{"normalize_scope", "pixel"}}, "normalize_scope"));
  EXPECT_TRUE(error({{"normalize_eps", 0.0}}, "normalize_eps"));
  EXPECT_TRUE(error({{"generator", {{"sampler", "ddim"}, {"guidance", 3.0}}}}, "two UNet calls"));
  DistarConfig c = config();
  c.reference_model = lcm_dir();  // an LCM has no score to match
  EXPECT_TRUE(testing::throws_error_containing([&] { DistarTask(c, lcm_dir(), log_); }, "must be a diffusion model"));
}

}  // namespace
}  // namespace rewardgen
