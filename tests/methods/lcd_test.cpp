#include "methods/lcd.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/log.h"
#include "io/run_dir.h"
#include "methods/train_job.h"
#include "schedulers/timesteps.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "tiny_models.h"
#include "world_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;

struct LcdNets {
  std::shared_ptr<UNet2DConditionModel> teacher, student, target;
  NoiseSchedule schedule = make_noise_schedule();
};

LcdNets nets(bool random_student_projection) {
  at::manual_seed(3);
  LcdNets n;
  n.teacher = std::make_shared<UNet2DConditionModel>(testing::tiny_unet_config());
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  n.student = make_lcm_student(*n.teacher, 8, !random_student_projection, g);
  n.target = make_lcm_student(*n.teacher, 8, true, g);
  return n;
}

LcdBatch batch(std::vector<int64_t> t_start, std::vector<int64_t> t_end, std::vector<double> w) {
  at::manual_seed(11);
  const int64_t B = static_cast<int64_t>(t_start.size());
  LcdBatch b;
  b.latents = at::randn({B, 4, 4, 4});
  b.noise = at::randn({B, 4, 4, 4});
  b.t_start = at::tensor(t_start, at::kLong);
  b.t_end = at::tensor(t_end, at::kLong);
  b.w = at::tensor(w, at::kDouble);
  b.conditioning = {at::randn({B, 8, 16}), at::randn({B, 8, 16})};
  return b;
}

double c_skip(int64_t t) { return 0.25 / (100.0 * t * t + 0.25); }
double c_out(int64_t t) { return 10.0 * t / std::sqrt(100.0 * t * t + 0.25); }

// Algorithm 1's lines written out by hand, one sample at a time, against lcd_loss on the batch.
TEST(LcdLoss, MatchesAHandComputationOfAlgorithmOne) {
  at::NoGradGuard no_grad;
  const LcdNets n = nets(true);  // a random guidance projection: w matters to the student
  const LcdBatch b = batch({19, 519}, {0, 499}, {1.5, 3.0});
  const LcdLoss l = lcd_loss(*n.student, *n.target, *n.teacher, n.schedule, b, "l2", 0.001);
  double sum = 0;
  for (int64_t i = 0; i < 2; ++i) {
    const int64_t ts = b.t_start[i].item<int64_t>(), te = b.t_end[i].item<int64_t>();
    const double as = n.schedule.alpha_bar(ts), ae = n.schedule.alpha_bar(te), w = b.w[i].item<double>();
    const at::Tensor x0 = b.latents.narrow(0, i, 1), eps = b.noise.narrow(0, i, 1);
    const at::Tensor cond = b.conditioning.cond.narrow(0, i, 1), uncond = b.conditioning.uncond.narrow(0, i, 1);
    const at::Tensor x = std::sqrt(as) * x0 + std::sqrt(1 - as) * eps;
    const at::Tensor t1 = at::full({1}, ts, at::kLong), t0 = at::full({1}, te, at::kLong);
    const at::Tensor e_u = n.teacher->forward(x, t1, uncond), e_c = n.teacher->forward(x, t1, cond);
    const at::Tensor e = e_u + (w + 1) * (e_c - e_u);  // = the LCM form x̂₀_c + w (x̂₀_c − x̂₀_u), through ε
    const at::Tensor x0_hat = (x - std::sqrt(1 - as) * e) / std::sqrt(as);
    const at::Tensor x_prev = std::sqrt(ae) * x0_hat + std::sqrt(1 - ae) * e;
    const at::Tensor embedding = guidance_scale_embedding(at::full({1}, w, at::kDouble), 8).to(at::kFloat);
    const at::Tensor e_target = n.target->forward(x_prev, t0, cond, embedding);
    const at::Tensor f_target = c_skip(te) * x_prev + c_out(te) * (x_prev - std::sqrt(1 - ae) * e_target) / std::sqrt(ae);
    const at::Tensor e_student = n.student->forward(x, t1, cond, embedding);
    const at::Tensor f_student = c_skip(ts) * x + c_out(ts) * (x - std::sqrt(1 - as) * e_student) / std::sqrt(as);
    EXPECT_TRUE(at::allclose(l.x_prev.narrow(0, i, 1), x_prev, 1e-4, 1e-5)) << i;
    EXPECT_TRUE(at::allclose(l.target.narrow(0, i, 1), f_target, 1e-4, 1e-5)) << i;
    sum += (f_student - f_target).pow(2).sum().item<double>();
  }
  EXPECT_NEAR(l.loss.item<double>(), sum / b.latents.numel(), 1e-4 * sum / b.latents.numel());
  EXPECT_GT(l.loss.item<double>(), 1e-6);
}

// A teacher step from t to t is the identity (DDIM reproduces x_t), so with the target equal to
// the student the loss is zero: what is left to learn is only the teacher's step.
TEST(LcdLoss, IsZeroWhenStudentAndTargetCoincideOnTheSameState) {
  at::NoGradGuard no_grad;
  const LcdNets n = nets(false);
  const LcdBatch b = batch({519, 999}, {519, 999}, {2.0, 4.0});
  const LcdLoss l = lcd_loss(*n.student, *n.student, *n.teacher, n.schedule, b, "l2", 0.001);
  EXPECT_LT(l.loss.item<double>(), 1e-10);
  const LcdLoss h = lcd_loss(*n.student, *n.student, *n.teacher, n.schedule, b, "huber", 0.001);
  EXPECT_LT(h.loss.item<double>(), 1e-8);
}

// The consistency boundary condition f(x, 0) = x: at t_n = 0 the target is the teacher's x̂_0 itself.
TEST(LcdLoss, TargetAtTimestepZeroIsTheTeachersStep) {
  at::NoGradGuard no_grad;
  const LcdNets n = nets(true);
  const LcdBatch b = batch({19, 19}, {0, 0}, {1.0, 5.0});
  const LcdLoss l = lcd_loss(*n.student, *n.target, *n.teacher, n.schedule, b, "l2", 0.001);
  EXPECT_TRUE(at::allclose(l.target, l.x_prev, 1e-5, 1e-6));
}

// Huber: the elementwise √(d² + c²) − c, averaged.
TEST(LcdLoss, HuberIsThePseudoHuberOfTheDifference) {
  at::NoGradGuard no_grad;
  const LcdNets n = nets(true);
  const LcdBatch b = batch({259, 759}, {239, 739}, {1.0, 2.0});
  const LcdLoss l = lcd_loss(*n.student, *n.target, *n.teacher, n.schedule, b, "huber", 0.01);
  const at::Tensor d = l.student - l.target;
  EXPECT_NEAR(l.loss.item<double>(), ((d.pow(2) + 1e-4).sqrt() - 0.01).mean().item<double>(), 1e-7);
}

TEST(LcdLoss, GradientReachesTheStudentOnly) {
  const LcdNets n = nets(true);
  const LcdBatch b = batch({259, 759}, {239, 739}, {1.0, 2.0});
  lcd_loss(*n.student, *n.target, *n.teacher, n.schedule, b, "l2", 0.001).loss.backward();
  EXPECT_TRUE(n.student->conv_in->weight.grad().defined());
  EXPECT_GT(n.student->time_embedding->cond_proj->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(n.target->conv_in->weight.grad().defined());
  EXPECT_FALSE(n.teacher->conv_in->weight.grad().defined());
}

// A zero-initialised guidance projection: the student is the teacher for every w; a random one is not.
TEST(LcmStudent, ZeroProjectionStartsAsTheTeacherForEveryW) {
  at::NoGradGuard no_grad;
  const LcdNets n = nets(true);
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 4, 4, 4}), t = at::tensor({100, 800}, at::kLong), c = at::randn({2, 8, 16});
  const at::Tensor teacher = n.teacher->forward(x, t, c);
  for (double w : {0.0, 3.0, 14.0}) {
    const at::Tensor emb = guidance_scale_embedding(at::full({2}, w, at::kDouble), 8).to(at::kFloat);
    EXPECT_TRUE(at::allclose(n.target->forward(x, t, c, emb), teacher, 1e-5, 1e-6)) << w;
    EXPECT_FALSE(at::allclose(n.student->forward(x, t, c, emb), teacher, 1e-3, 1e-4)) << w;
  }
  EXPECT_EQ(n.student->config().time_cond_proj_dim, 8);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(0);
  EXPECT_TRUE(testing::throws_error_containing([&] { make_lcm_student(*n.student, 8, true, g); }, "already has time_cond_proj_dim"));
}

TEST(LcdConfig, RejectsBadKeys) {
  auto read = [](const Json& j) {
    ConfigReader r(j, "lcd.json");
    read_lcd_config(r);
  };
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"w_min", 5.0}, {"w_max", 2.0}}); }, "w_min 5 > w_max 2"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"time_cond_proj_dim", 255}}); }, "must be even"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"eval_steps", Json::array()}}); }, "eval_steps must list 1 to 8"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"skip", 0}}); }, "skip"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"w_max", NAN}}); }, "w_max"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"loss", "l1"}}); }, "loss"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"export_ema_decay", 1.0}}); }, "export_ema_decay"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read({{"export_ema_decay", -0.1}}); }, "export_ema_decay"));
}

class LcdWorld : public testing::TinyWorldTest {
 protected:
  static LcdConfig config() {
    LcdConfig c;
    c.batch_size = 4;
    c.trainer.max_steps = 4;
    c.trainer.checkpoint_every = 2;
    c.trainer.eval_every = 0;
    c.time_cond_proj_dim = 8;
    c.eval_limit = 6;
    c.eval_steps = {1, 2};
    c.sample_steps = 2;
    return c;
  }
  // The training job on the tiny world with `config` (written to runs/lcd.json) into runs/run.
  TrainJobResult train_job(const TempDir& runs, const Json& config) const {
    TrainJobOptions o;
    o.method = "lcd";
    o.config_file = runs.file("lcd.json");
    save_json_file(o.config_file, config);
    o.model_dir = dir_->path();
    o.out = runs.file("run");
    o.eval_limit = 6;
    return run_train_job(o, log_);
  }
};

TEST_F(LcdWorld, ResumedRunEqualsTheUninterruptedOne) {
  TempDir runs;
  const LcdConfig c = config();
  const auto [straight, resumed] =
      straight_and_resumed([&] { return std::make_unique<LcdTask>(c, dir_->path(), log_); }, c.trainer, lcd_config_json(c), runs.file("run"), 2);
  ASSERT_EQ(straight.size(), resumed.size());
  for (const auto& [name, t] : straight) EXPECT_TRUE(at::equal(t, resumed.at(name))) << name;
  // The target moved away from the student's start (the EMA was applied) and both are finite.
  EXPECT_TRUE(at::isfinite(straight.at("lcd/target/conv_in.weight")).all().item<bool>());
  EXPECT_FALSE(at::equal(straight.at("lcd/target/time_embedding.cond_proj.weight"), at::zeros_like(straight.at("lcd/target/time_embedding.cond_proj.weight"))));
}

// With export_ema_decay the run keeps a second EMA of the student, resumes it exactly, and it is
// neither the target nor the student (0.2 against 0.95: the trainer's warm-up min(d, (1+s)/(10+s))
// gives both 0.1 and 0.18 on the first two steps, then 0.2 against 0.25 and 0.31).
TEST_F(LcdWorld, SlowExportEmaResumesExactlyAndIsItsOwnAverage) {
  TempDir runs;
  LcdConfig c = config();
  c.export_ema_decay = 0.2;
  const auto [straight, resumed] =
      straight_and_resumed([&] { return std::make_unique<LcdTask>(c, dir_->path(), log_); }, c.trainer, lcd_config_json(c), runs.file("run"), 2);
  ASSERT_EQ(straight.size(), resumed.size());
  for (const auto& [name, t] : straight) EXPECT_TRUE(at::equal(t, resumed.at(name))) << name;
  const std::string weight = "conv_in.weight";
  const at::Tensor ema = straight.at("lcd/export_ema/" + weight);
  EXPECT_FALSE(at::allclose(ema, straight.at("lcd/target/" + weight)));
  EXPECT_FALSE(at::allclose(ema, straight.at("lcd/student/" + weight)));
}

// The job exports an LCM whose recipe samples with no flags: lcm, the configured steps and guidance,
// the distillation grid as original_inference_steps; the periodic evaluation logs every step count.
TEST_F(LcdWorld, TrainJobExportsAnLcmThatSamplesWithItsRecipe) {
  TempDir runs;
  const TrainJobResult r = train_job(runs, {{"batch_size", 2}, {"time_cond_proj_dim", 8}, {"eval_limit", 6}, {"eval_steps", {1, 2}},
                                           {"sample_steps", 2}, {"timestep_rule", "rlcm"},
                                           {"trainer", {{"max_steps", 2}, {"eval_every", 2}}}});
  const Pipeline p = load_pipeline(r.generator_dir, {}, log_);
  EXPECT_EQ(p.unet->config().time_cond_proj_dim, 8);
  EXPECT_EQ(p.scheduler.recipe.sampler, "lcm");
  EXPECT_EQ(p.scheduler.recipe.steps, 2);
  EXPECT_EQ(p.scheduler.recipe.timestep_spacing, "rlcm");
  EXPECT_EQ(p.scheduler.original_inference_steps, 50);
  EXPECT_EQ(r.eval.at("sampler").at("name"), "lcm");
  EXPECT_EQ(r.eval.at("relation_control").at("lines"), 1);  // the job's evaluation runs the control: one position line of 6
  std::ifstream in(r.run_dir + "/metrics.jsonl");
  const std::string metrics((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(metrics.find("\"steps1/accuracy/overall\""), std::string::npos);
  EXPECT_NE(metrics.find("\"accuracy/overall\""), std::string::npos);
  EXPECT_EQ(metrics.find("\"target/accuracy/overall\""), std::string::npos);  // only with export_ema_decay
}

// first_timestep cuts the grid: the recipe samples the cut grid's explicit timesteps, which the
// periodic evaluation used too; a value below the grid's lowest entry is refused when the task is built.
TEST_F(LcdWorld, FirstTimestepCutsTheGridForTheRecipe) {
  TempDir runs;
  const TrainJobResult r = train_job(runs, {{"batch_size", 2}, {"time_cond_proj_dim", 8}, {"eval_limit", 6}, {"eval_steps", {2}},
                                           {"sample_steps", 2}, {"first_timestep", 759},
                                           {"trainer", {{"max_steps", 2}, {"eval_every", 2}}}});
  const Pipeline p = load_pipeline(r.generator_dir, {}, log_);
  EXPECT_EQ(p.scheduler.recipe.timesteps, (std::vector<int64_t>{759, 379}));
  EXPECT_EQ(p.scheduler.recipe.first_timestep, 759);  // so that `--steps N` samples the cut grid too
  EXPECT_EQ(r.eval.at("sampler").at("timesteps"), Json({759, 379}));
  LcdConfig c = config();
  c.first_timestep = 10;  // below k − 1 = 19
  EXPECT_TRUE(testing::throws_error_containing([&] { LcdTask(c, dir_->path(), log_); }, "first_timestep 10 must be -1 (T - 1) or in [19, 999]"));
  c.first_timestep = 19;  // one grid entry, for eval_steps {1, 2}
  EXPECT_TRUE(testing::throws_error_containing([&] { LcdTask(c, dir_->path(), log_); }, "eval_steps entry 2 exceeds the distillation grid's 1"));
}

// With export_ema_decay the job exports the slow EMA (in fp16), not the target, and the periodic
// evaluation scores the target beside it.
TEST_F(LcdWorld, TrainJobExportsTheSlowEmaAndEvaluatesTheTargetBeside) {
  TempDir runs;
  const TrainJobResult r = train_job(runs, {{"batch_size", 2}, {"time_cond_proj_dim", 8}, {"eval_limit", 6}, {"eval_steps", {2}},
                                           {"sample_steps", 2}, {"export_ema_decay", 0.2},
                                           {"trainer", {{"max_steps", 4}, {"eval_every", 4}, {"checkpoint_every", 4}}}});
  const Pipeline p = load_pipeline(r.generator_dir, {}, log_);
  const Checkpoint last = CheckpointManager(r.run_dir + "/checkpoints", 1).load_latest(log_).value();
  const std::string weight = "conv_in.weight";
  const at::Tensor exported = p.unet->conv_in->weight.to(at::kFloat);
  EXPECT_TRUE(at::equal(exported, last.tensors.at("lcd/export_ema/" + weight).to(at::kHalf).to(at::kFloat)));
  EXPECT_FALSE(at::equal(exported, last.tensors.at("lcd/target/" + weight).to(at::kHalf).to(at::kFloat)));
  const std::vector<Json> rows = read_metrics(r.run_dir + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows.back().contains("accuracy/overall"));
  EXPECT_TRUE(rows.back().contains("target/accuracy/overall"));
}

}  // namespace
}  // namespace rewardgen
