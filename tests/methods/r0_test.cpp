#include "methods/r0.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "io/run_dir.h"
#include "methods/refl.h"
#include "methods/train_job.h"
#include "rewards/world_rewards.h"
#include "sampling/pipeline.h"
#include "test_util.h"
#include "world_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;

TEST(RewardGradients, NormalisationGivesUnitNormPerSample) {
  at::manual_seed(0);
  const at::Tensor g = at::randn({3, 3, 4, 4}) * at::tensor({0.01f, 1.f, 100.f}).view({3, 1, 1, 1});
  const at::Tensor n = normalize_per_sample(g, 1e-12).flatten(1).norm(2, 1);
  EXPECT_TRUE(at::allclose(n, at::ones({3}), 1e-5, 1e-6));
}

// A reward with a known gradient: r(x) = Σ a ⊙ x, so ∂r/∂x = a whatever x.
class LinearReward : public Reward {
 public:
  LinearReward(at::Tensor a, std::string name) : a_(std::move(a)), name_(std::move(name)) {}
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>&) override { return (images * a_).flatten(1).sum(1); }
  bool differentiable() const override { return true; }
  std::string name() const override { return name_; }

 private:
  at::Tensor a_;
  std::string name_;
};

TEST(RewardGradients, EachRewardContributesItsUnitDirectionTimesItsWeight) {
  at::manual_seed(1);
  const at::Tensor a1 = at::randn({2, 3, 4, 4}), a2 = at::randn({2, 3, 4, 4}) * 50;
  // Keyed by the label the config gave, or by the reward's own name where there is none.
  const std::vector<WeightedReward> rewards = {{std::make_shared<LinearReward>(a1, "one"), 1.0, ""},
                                               {std::make_shared<LinearReward>(a2, "two:/resolved/path"), 0.5, "two"}};
  const at::Tensor images = at::rand({2, 3, 4, 4}) * 2 - 1;
  const RewardDirection d = reward_direction(rewards, images, {"a", "b"}, GradientNormalization::per_sample, 0.0);
  const at::Tensor expected = normalize_per_sample(a1, 0) + 0.5 * normalize_per_sample(a2, 0);
  EXPECT_TRUE(at::allclose(d.direction, expected, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(d.norms.at("two"), a2.flatten(1).norm(2, 1), 1e-4, 1e-4));
  EXPECT_EQ(d.scores.count("one"), 1u);
  EXPECT_EQ(d.scores.count("two:/resolved/path"), 0u);
  // Raw: the plain weighted sum, so a reward 50x larger dominates.
  const RewardDirection raw = reward_direction(rewards, images, {"a", "b"}, GradientNormalization::none, 0.0);
  EXPECT_TRUE(at::allclose(raw.direction, a1 + 0.5 * a2, 1e-5, 1e-5));
  // The surrogate −⟨sg(g), x⟩ / B has gradient −g / B in x.
  const at::Tensor x = images.clone().requires_grad_(true);
  surrogate_loss(d.direction, x).backward();
  EXPECT_TRUE(at::allclose(x.grad(), -d.direction / 2, 1e-6, 1e-7));
}

TEST(RewardGradients, BatchNormalisationGivesUnitMeanNormAndKeepsTheRatios) {
  at::manual_seed(2);
  const at::Tensor g = at::randn({3, 3, 4, 4}) * at::tensor({0.01f, 1.f, 100.f}).view({3, 1, 1, 1});
  const at::Tensor before = g.flatten(1).norm(2, 1);
  const at::Tensor after = normalize_per_batch(g, 0).flatten(1).norm(2, 1);
  EXPECT_NEAR(after.mean().item<double>(), 1.0, 1e-5);
  EXPECT_TRUE(at::allclose(after / after[2], before / before[2], 1e-5, 1e-7));  // the 1 : 100 : 10⁴ stays
  // Through reward_direction: a reward 50x larger still gets the same budget (mean norm × weight).
  const std::vector<WeightedReward> rewards = {{std::make_shared<LinearReward>(g, "one"), 1.0, "one"},
                                               {std::make_shared<LinearReward>(g * 50, "two"), 0.5, "two"}};
  const at::Tensor images = at::zeros({3, 3, 4, 4});
  const RewardDirection d = reward_direction(rewards, images, {"a", "b", "c"}, GradientNormalization::per_batch, 0.0);
  EXPECT_TRUE(at::allclose(d.direction, 1.5 * normalize_per_batch(g, 0), 1e-5, 1e-7));
}

TEST(RewardGradients, LookaheadIsTheDisplacementOfAdamOnThePixelsProjectedToTheImageRange) {
  // r(x) = Σ a ⊙ x has the constant gradient a, on which Adam steps every pixel by lr·sign(a)
  // (m̂ = a, v̂ = a²): 3 steps of 0.1 move a pixel by 0.3 toward sign(a), unless the projection to
  // [-1, 1] stops it first (a pixel at 0.9 pushed up moves 0.1).
  at::manual_seed(3);
  const at::Tensor a = at::randn({2, 3, 4, 4});
  const std::vector<WeightedReward> rewards = {{std::make_shared<LinearReward>(a, "linear"), 2.0, ""}};
  const at::Tensor images = at::full({2, 3, 4, 4}, 0.9);
  const PixelLookahead lookahead{3, 0.1};
  const RewardDirection d = reward_direction(rewards, images, {"a", "b"}, GradientNormalization::none, 0.0, lookahead);
  const at::Tensor expected = at::where(a > 0, at::full_like(a, 0.1), at::full_like(a, -0.3));
  EXPECT_TRUE(at::allclose(d.direction, 2.0 * expected, 1e-4, 1e-5));
  // The score is read at the start, and the normalised mode gives each sample a unit direction.
  EXPECT_TRUE(at::allclose(d.scores.at("linear"), (images * a).flatten(1).sum(1), 1e-5, 1e-5));
  const RewardDirection unit = reward_direction(rewards, images, {"a", "b"}, GradientNormalization::per_sample, 0.0, lookahead);
  EXPECT_TRUE(at::allclose(unit.direction.flatten(1).norm(2, 1), at::full({2}, 2.0), 1e-5, 1e-6));
  EXPECT_THROW(reward_direction(rewards, images, {"a", "b"}, GradientNormalization::none, 0.0, PixelLookahead{-1, 0.1}), Error);
  EXPECT_THROW(reward_direction(rewards, images, {"a", "b"}, GradientNormalization::none, 0.0, PixelLookahead{2, NAN}), Error);
  EXPECT_THROW(reward_direction(rewards, images, {"a", "b"}, GradientNormalization::none, 0.0, PixelLookahead{2, 0.1, -1}), Error);
}

TEST(RewardGradients, LookaheadGainScaleQuietsTheSamplesItCannotImprove) {
  // Two samples of a linear reward, the first's slope a hundred times smaller: Adam displaces both
  // by 0.3·sign(a) in 3 steps of 0.1, but the first gains Σ|a₀|·0.3 ≈ 0.14 and the second ≈ 14.
  // (|a| ≥ 0.005 everywhere, so Adam's ε of 1e-8 leaves the steps at lr.)
  at::manual_seed(4);
  at::Tensor a = at::randn({2, 3, 4, 4}).sign() * (0.5 + at::rand({2, 3, 4, 4}));
  a[0].mul_(1e-2);
  const std::vector<WeightedReward> rewards = {{std::make_shared<LinearReward>(a, "linear"), 2.0, ""}};
  const at::Tensor images = at::zeros({2, 3, 4, 4});
  const double scale = 1.0;
  const RewardDirection d =
      reward_direction(rewards, images, {"a", "b"}, GradientNormalization::none, 0.0, PixelLookahead{3, 0.1, scale});
  const at::Tensor displacement = 0.3 * a.sign();
  const at::Tensor gain = (a * displacement).flatten(1).sum(1);  // r(x*) − r(x) with r(x) = 0
  EXPECT_TRUE(at::allclose(d.gains.at("linear"), gain, 1e-4, 1e-5));
  ASSERT_LT(gain[0].item<double>(), scale);
  ASSERT_GT(gain[1].item<double>(), scale);
  // The first sample's displacement scaled by its gain / scale, the second's by 1 (the clamp).
  EXPECT_TRUE(at::allclose(d.direction[0], 2.0 * displacement[0] * gain[0] / scale, 1e-4, 1e-6));
  EXPECT_TRUE(at::allclose(d.direction[1], 2.0 * displacement[1], 1e-4, 1e-5));
  // Normalised per sample, the scaling comes after: norms 2·gain₀/scale and 2.
  const RewardDirection unit =
      reward_direction(rewards, images, {"a", "b"}, GradientNormalization::per_sample, 0.0, PixelLookahead{3, 0.1, scale});
  EXPECT_TRUE(at::allclose(unit.direction.flatten(1).norm(2, 1), at::stack({2 * gain[0] / scale, at::full({}, 2.0)}), 1e-4, 1e-6));
  // Off (0): no gains are read and the directions are the plain lookahead's.
  const RewardDirection off = reward_direction(rewards, images, {"a", "b"}, GradientNormalization::none, 0.0, PixelLookahead{3, 0.1});
  EXPECT_TRUE(off.gains.empty());
  EXPECT_TRUE(at::allclose(off.direction, 2.0 * displacement, 1e-4, 1e-5));
}

class R0World : public testing::TinyWorldTest {
 protected:
  static R0Config config() {
    R0Config c;
    c.batch_size = 4;
    c.trainer.max_steps = 4;
    c.trainer.checkpoint_every = 2;
    c.trainer.eval_every = 0;
    c.trainer.lr = 1e-3;
    c.eval_limit = 6;
    return c;
  }
};

TEST_F(R0World, WeightRegularizerGradientIsTwoLambdaTimesTheDistance) {
  GeneratorConfig g;
  FewStepGenerator generator(g, dir_->path(), log_);
  const NamedTensors params = generator.trainable_parameters();
  {
    at::NoGradGuard no_grad;
    params[0].second.add_(0.5);  // θ − θ₀ = 0.5 in the first tensor only
  }
  const at::Tensor d = generator.distance_to_initial();
  EXPECT_NEAR(d.item<double>(), 0.25 * params[0].second.numel(), 1e-3);
  (3.0 * d).backward();  // λ = 3: ∇ = 2λ(θ − θ₀)
  EXPECT_TRUE(at::allclose(params[0].second.grad(), at::full_like(params[0].second, 3.0), 1e-5, 1e-6));
  EXPECT_EQ(params[1].second.grad().abs().sum().item<double>(), 0.0);
}

TEST_F(R0World, RandomEtaChangesTheSamplesOfTheSameNoise) {
  GeneratorConfig g;
  FewStepGenerator generator(g, dir_->path(), log_);
  at::NoGradGuard no_grad;
  const Conditioning c = generator.conditioning({"a red circle", "two blue squares"}, false);
  at::Generator noise = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor x_T = generator.initial_noise(2, noise);
  auto run = [&](const at::Tensor& eta, uint64_t seed) {
    at::Generator rng = at::make_generator<at::CPUGeneratorImpl>(seed);
    return generator.rollout(c, x_T, eta, GradientMode::none, 0, 0, rng).x0;
  };
  const at::Tensor zero = at::zeros({4, 2}, at::kDouble);
  EXPECT_TRUE(at::equal(run(zero, 1), run(zero, 2)));  // η = 0: deterministic DDIM, the seed does not matter
  const at::Tensor random = at::full({4, 2}, 0.8, at::kDouble);
  EXPECT_FALSE(at::allclose(run(random, 1), run(random, 2)));  // η > 0: fresh noise re-enters at every step
}

double mean_reward(const std::string& model_dir, Reward& reward, const Logger& log) {
  const Pipeline pipeline = load_pipeline(model_dir, {}, log);
  const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  const std::vector<std::string> prompts = {"a red circle", "a blue square", "two green triangles", "a yellow circle"};
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(123);
  at::NoGradGuard no_grad;
  return reward.score(model.generate(prompts, sampler_options(pipeline.scheduler.recipe), g), prompts).mean().item<double>();
}

TEST_F(R0World, AShortRunRaisesTheCompositeRewardAndExportsItsRecipe) {
  TempDir run;
  const std::string config_file = run.file("r0.json");
  save_json_file(config_file, {{"batch_size", 8}, {"rewards", {{"world.compositional", 1.0}}}, {"cfg_reward", 0.0},
                               {"weight_lambda", 0.0}, {"eval_limit", 6}, {"trainer", {{"max_steps", 12}, {"lr", 3e-3}, {"eval_every", 6}}}});
  TrainJobOptions o;
  o.config_file = config_file;
  o.model_dir = dir_->path();
  o.out = run.file("r0");
  o.evaluate = false;
  const TrainJobResult result = run_train_job(o, log_);
  EXPECT_EQ(result.summary.last_step, 12);
  // The periodic evaluation: checker accuracy and FD in the metrics rows, a grid to look at.
  const std::vector<nlohmann::json> rows = read_metrics(run.file("r0/metrics.jsonl"));
  ASSERT_EQ(rows.size(), 12u);
  EXPECT_TRUE(rows[5].contains("accuracy/overall") && rows[5].contains("eval/fd"));
  EXPECT_TRUE(rows[5].contains("eval/position_reversed"));  // one position prompt among the 6
  EXPECT_FALSE(rows[4].contains("accuracy/overall"));
  EXPECT_TRUE(std::filesystem::exists(run.file("r0/samples/step_00000006.png")));
  EXPECT_TRUE(std::filesystem::exists(run.file("r0/samples/step_00000012.png")));
  const Pipeline exported = load_pipeline(result.generator_dir, {}, log_);
  EXPECT_EQ(exported.scheduler.recipe.sampler, "ddim");
  EXPECT_EQ(exported.scheduler.recipe.output, "x0");
  EXPECT_EQ(exported.scheduler.recipe.timesteps, (std::vector<int64_t>{999, 749, 499, 249}));
  // The teacher's own 4-step samples vs the trained generator's, same prompts and noise.
  Pipeline teacher = load_pipeline(dir_->path(), {}, log_);
  teacher.scheduler.recipe = exported.scheduler.recipe;
  TempDir as_teacher;
  save_pipeline(as_teacher.path(), teacher);
  CompositionalReward reward;
  const double before = mean_reward(as_teacher.path(), reward, log_), after = mean_reward(result.generator_dir, reward, log_);
  EXPECT_GT(after, before + 0.01) << "before " << before << ", after " << after;
}

void expect_same_files_state(const std::string& a, const std::string& b) {
  const std::vector<nlohmann::json> ma = read_metrics(a + "/metrics.jsonl"), mb = read_metrics(b + "/metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) EXPECT_EQ(ma[i]["loss"], mb[i]["loss"]) << "row " << i;
}

TEST_F(R0World, ResumedRunEqualsTheUninterruptedOne) {
  TempDir runs;
  for (bool plus : {false, true}) {
    R0Config c = config();
    c.intermediate_supervision = plus;  // R0+ draws k* from the run's generator: restored too
    const std::string tag = plus ? "plus" : "plain";
    const auto [straight, resumed] = straight_and_resumed([&] { return std::make_unique<R0Task>(c, dir_->path(), log_); }, c.trainer,
                                                          r0_config_json(c), runs.file(tag), 2);
    ASSERT_EQ(straight.size(), resumed.size());
    // Bit-exact for R0+ too: its last-bit drift came from the CLIP text cache, whose embeddings
    // depended on which texts were encoded together (now one text per call).
    for (const auto& [name, t] : straight) EXPECT_TRUE(at::equal(t, resumed.at(name))) << name;
    expect_same_files_state(runs.file(tag + "_straight"), runs.file(tag + "_split"));
  }
}

// precision bf16: the same step under autocast (fp32 master weights) gives a finite loss close to
// the fp32 step's on the same prompts and noise, and the weights stay fp32. The first step's reward
// (the images before any update) agrees within 5 %; the loss, R0's surrogate −⟨sg(g), x⟩ (a sum
// over pixels of both signs, so bf16's rounding weighs more), within 15 % (9 % seen on LibTorch
// 2.11, whose CPU autocast runs more of the decoder in bf16; under 5 % on Debian's 1.13).
TEST_F(R0World, Bf16AutocastStepIsFiniteAndCloseToFp32) {
  TempDir runs;
  std::vector<double> first_loss, first_reward;
  for (const std::string precision : {"fp32", "bf16"}) {
    R0Config c = config();
    c.trainer.max_steps = 2;
    c.precision = precision;
    const RunDir run = RunDir::create(runs.file(precision), false);
    R0Task task(c, dir_->path(), log_);
    Trainer(c.trainer, run, log_).run(task, false);
    for (const auto& [name, p] : task.trainable_parameters()) ASSERT_EQ(p.scalar_type(), at::kFloat) << name;
    const std::vector<nlohmann::json> rows = read_metrics(run.metrics_path());
    ASSERT_EQ(rows.size(), 2u);
    for (const auto& row : rows) ASSERT_TRUE(std::isfinite(row["loss"].get<double>())) << precision;
    first_loss.push_back(rows[0]["loss"].get<double>());
    first_reward.push_back(rows[0]["reward"].get<double>());
    // Logged under the names the config gives, not the model folder the world CLIP was resolved to.
    for (const char* key : {"reward/world.compositional", "reward/world.clip", "reward/world.clip_contrast", "reward_grad_norm/world.clip"})
      EXPECT_TRUE(rows[0].contains(key)) << key;
    for (const auto& item : rows[0].items()) EXPECT_EQ(item.key().find(':'), std::string::npos) << item.key();
  }
  EXPECT_NE(first_loss[0], first_loss[1]) << "bf16 must really have run in bf16";
  EXPECT_NEAR(first_reward[1], first_reward[0], 0.05 * std::abs(first_reward[0]) + 0.01);
  EXPECT_NEAR(first_loss[1], first_loss[0], 0.15 * std::abs(first_loss[0]) + 0.05);
}

TEST_F(R0World, ReflAndDraftTrainAndStayFinite) {
  TempDir runs;
  for (const std::string variant : {"refl", "draft"}) {
    ReflConfig c;
    c.batch_size = 4;
    c.trainer.max_steps = 2;
    c.trainer.eval_every = 0;
    c.variant = variant;
    c.draft_k = 2;
    const RunDir run = RunDir::create(runs.file(variant), false);
    ReflTask task(c, dir_->path(), log_);
    Trainer(c.trainer, run, log_).run(task, false);
    const std::vector<nlohmann::json> rows = read_metrics(run.metrics_path());
    ASSERT_EQ(rows.size(), 2u);
    for (const auto& row : rows) EXPECT_TRUE(row["loss"].is_number()) << variant;
    if (variant == "refl") {
      EXPECT_GE(rows[0]["refl_step"].get<double>(), 2.0);
    }
  }
}

TEST(TrainJob, RejectsBadInputBeforeWritingAnything) {
  TempDir tmp;
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  TrainJobOptions o;
  o.out = tmp.file("never");
  o.method = "nope";
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "unknown method 'nope' (known: ddpo, distar, distar-kl, lcd, r0, refl, rlcm)"));
  o.method = "r0";
  save_json_file(tmp.file("bad.json"), {{"weight_lambdaa", 1.0}});
  o.config_file = tmp.file("bad.json");
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "weight_lambdaa"));
  save_json_file(tmp.file("bad.json"), {{"eta_max", 2.0}});
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "eta_max"));
  save_json_file(tmp.file("bad.json"), {{"lookahead_lr", 0.0}});
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "lookahead_lr"));
  save_json_file(tmp.file("bad.json"), {{"lookahead_steps", -1}});
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "lookahead_steps"));
  save_json_file(tmp.file("bad.json"), {{"lookahead_gain_scale", -0.5}});
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "lookahead_gain_scale"));
  save_json_file(tmp.file("bad.json"), {{"precision", "fp16"}});
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "precision"));
  save_json_file(tmp.file("bad.json"), {{"generator", {{"lora", true}, {"ema_decay", 0.9}}}});
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "ema_decay needs a full fine-tune"));
  save_json_file(tmp.file("bad.json"), {{"generator", {{"timesteps", {500, 700}}}}});
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "strictly descending"));
  o.config_file.clear();
  o.minutes = std::nan("");
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "--minutes"));
  o.minutes = 0;
  setenv("RANK", "0", 1);  // a partial launch environment
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "WORLD_SIZE, MASTER_ADDR, MASTER_PORT are not set"));
  setenv("WORLD_SIZE", "2", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "29500", 1);
  if (at::hasCUDA()) {  // without CUDA, --device cuda is refused as such first (below)
    o.device = "cuda";
    EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); },
                                                 "rank 0 of a 2-process launch, which trains on the CPU (Gloo); --device cuda needs NCCL"));
    o.device = "cpu";
  }
  for (const char* name : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(name);
  o.dist_timeout_s = 0;
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "--dist-timeout must be a number of seconds in [1, 86400], got 0"));
  o.dist_timeout_s = 1800;
  o.device = "tpu";
  EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "unknown device 'tpu'"));
  if (!at::hasCUDA()) {
    o.device = "cuda";
    EXPECT_TRUE(testing::throws_error_containing([&] { run_train_job(o, log); }, "has no CUDA"));
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("never")));
}

}  // namespace
}  // namespace rewardgen
