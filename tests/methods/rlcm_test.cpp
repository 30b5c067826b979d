// The policy-gradient family: DDPO's and RLCM's policies (their transitions' log-probs against the
// closed form, and re-scored equal to the stored ones), PPO's training task (resume mid-round,
// ρ = 1 on a round's first update), RLCM raising a toy reward, and their config errors.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "io/run_dir.h"
#include "methods/ddpo.h"
#include "methods/lcd.h"
#include "methods/rlcm.h"
#include "methods/train_job.h"
#include "schedulers/timesteps.h"
#include "world_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;

// log N(x; μ, σ² I) averaged over the non-batch dims: [B].
at::Tensor mean_gaussian_log_prob(const at::Tensor& x, const at::Tensor& mu, double sigma) {
  return (-(x - mu).pow(2) / (2 * sigma * sigma) - std::log(sigma) - 0.5 * std::log(2 * M_PI)).flatten(1).mean(1);
}

// One intra-op thread while it lives. The PPO tests run many tiny GEMMs; under `ctest -j2` two
// 2-thread test processes on 2 cores leave OpenBLAS's OpenMP threads spinning in sched_yield for
// their descheduled partners (9 s alone became over 10 minutes), which one thread avoids.
class OneThread {
 public:
  OneThread() : before_(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(before_); }

 private:
  int before_;
};

// The tiny world teacher and its LCM (lcm_dir()).
class PpoWorld : public testing::TinyWorldWithLcmTest {
 protected:
  static DdpoConfig ddpo() {
    DdpoConfig c;
    c.generator.timesteps = {951, 501, 1};
    c.batch_size = 4;
    c.updates_per_round = 2;
    c.micro_batch = 1;  // re-scored one trajectory at a time: ρ = 1 must not depend on the batching
    c.rewards = {{"brightness", 1.0}};
    c.trainer.max_steps = 4;
    c.trainer.checkpoint_every = 2;
    c.trainer.eval_every = 0;
    return c;
  }
  static RlcmConfig rlcm() {
    RlcmConfig c;
    c.generator.timesteps = lcm_timesteps(SchedulerConfig{}, 2, "rlcm");
    c.generator.lora_config.rank = 4;
    c.batch_size = 8;
    c.rewards = {{"brightness", 1.0}};
    c.trainer.eval_every = 0;
    return c;
  }
};

// DDPO's policy: DDIM η = 1 with CFG 3 (two UNet calls), the last step to t = 0; each stored
// log-prob is the Gaussian's of DDIM Eq. (12)/(16) written out here, and re-scoring the stored
// transition gives it back (ρ = 1 before any update).
TEST_F(PpoWorld, DdpoTransitionsHaveTheClosedFormLogProb) {
  const DdpoConfig c = ddpo();
  const FewStepGenerator g(c.generator, dir_->path(), log_);
  at::Generator rng = at::make_generator<at::CPUGeneratorImpl>(7);
  const std::vector<std::string> prompts{"a red circle", "two blue squares"};
  const Conditioning cond = g.conditioning(prompts, false);
  ASSERT_TRUE(cond.uncond.defined());
  at::NoGradGuard no_grad;
  const Rollout r = g.rollout(cond, g.initial_noise(2, rng), at::scalar_tensor(1.0, at::kDouble), GradientMode::none, 0, 0, rng, true);
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_EQ(r.nfe, 6);
  const NoiseSchedule& s = g.schedule();
  const std::vector<int64_t> prev{501, 1, 0};
  for (size_t k = 0; k < 3; ++k) {
    const RolloutStep& step = r.steps[k];
    EXPECT_EQ(step.t_prev, prev[k]);
    const at::Tensor t = at::full({2}, step.t, at::kLong);
    const at::Tensor e_u = g.unet().forward(step.x_t, t, cond.uncond), e_c = g.unet().forward(step.x_t, t, cond.cond);
    const at::Tensor eps = e_u + 3.0 * (e_c - e_u);
    const double a_t = s.alpha_bar(step.t), a_p = s.alpha_bar(step.t_prev);
    const at::Tensor x0 = (step.x_t - std::sqrt(1 - a_t) * eps) / std::sqrt(a_t);
    const double sigma = std::sqrt((1 - a_p) / (1 - a_t)) * std::sqrt(1 - a_t / a_p);  // η = 1
    const at::Tensor mu = std::sqrt(a_p) * x0 + std::sqrt(1 - a_p - sigma * sigma) * eps;
    EXPECT_GT(sigma, 0) << k;
    EXPECT_TRUE(at::allclose(step.log_prob, mean_gaussian_log_prob(step.x_prev, mu, sigma), 1e-4, 1e-4)) << k;
    const at::Tensor rescored = transition_log_prob(g.unet(), s, "ddim", cond, at::scalar_tensor(3.0, at::kDouble), t,
                                                    at::full({2}, step.t_prev, at::kLong), step.x_t, step.x_prev,
                                                    at::scalar_tensor(1.0, at::kDouble));
    EXPECT_TRUE(at::allclose(rescored, step.log_prob, 1e-5, 1e-5)) << k;
  }
  EXPECT_TRUE(at::equal(g.output_latents(r), r.sample));  // the reward judges the final sample
}

// RLCM's policy: x_prev ~ N(√ᾱ_prev f, (1 − ᾱ_prev) I) around the consistency output
// f = c_skip x_t + c_out x̂₀ (guidance through the w embedding: one call), the last step re-noised
// to its own timestep; the image is that step's f.
TEST_F(PpoWorld, RlcmTransitionsHaveTheClosedFormLogProb) {
  const RlcmConfig c = rlcm();
  const FewStepGenerator g(c.generator, lcm_dir(), log_);
  at::Generator rng = at::make_generator<at::CPUGeneratorImpl>(7);
  const std::vector<std::string> prompts{"a red circle", "two blue squares"};
  const Conditioning cond = g.conditioning(prompts, false);
  EXPECT_FALSE(cond.uncond.defined());
  at::NoGradGuard no_grad;
  const Rollout r = g.rollout(cond, g.initial_noise(2, rng), at::Tensor(), GradientMode::none, 0, 0, rng, true);
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.nfe, 2);
  const NoiseSchedule& s = g.schedule();
  const at::Tensor embedding = guidance_scale_embedding(at::full({2}, 2.0, at::kDouble), 8).to(at::kFloat);  // w = 3 − 1
  for (size_t k = 0; k < 2; ++k) {
    const RolloutStep& step = r.steps[k];
    EXPECT_EQ(step.t_prev, k == 0 ? r.steps[1].t : step.t);  // the last step stays at its timestep
    const at::Tensor eps = g.unet().forward(step.x_t, at::full({2}, step.t, at::kLong), cond.cond, embedding);
    const double a_t = s.alpha_bar(step.t), a_p = s.alpha_bar(step.t_prev);
    const double scaled = 10.0 * static_cast<double>(step.t);
    const double c_skip = 0.25 / (scaled * scaled + 0.25), c_out = scaled / std::sqrt(scaled * scaled + 0.25);
    const at::Tensor f = c_skip * step.x_t + c_out * (step.x_t - std::sqrt(1 - a_t) * eps) / std::sqrt(a_t);
    EXPECT_TRUE(at::allclose(step.x0, f, 1e-4, 1e-5)) << k;
    EXPECT_TRUE(at::allclose(step.log_prob, mean_gaussian_log_prob(step.x_prev, std::sqrt(a_p) * f, std::sqrt(1 - a_p)), 1e-4, 1e-4))
        << k;
  }
  EXPECT_TRUE(at::equal(g.output_latents(r), r.steps[1].x0));  // the image is the last f, not the re-noised sample
}

// A run interrupted after the first of a round's two updates resumes from the stored round (the
// states, log π_old, advantages and shuffles in the checkpoint) and ends equal to the straight run.
// The first update of each round has ρ = 1 exactly: nothing clipped, approx KL 0.
TEST_F(PpoWorld, ResumedMidRoundEqualsTheUninterruptedRun) {
  const OneThread one_thread;
  TempDir runs;
  const DdpoConfig c = ddpo();
  const auto [straight, resumed] =
      straight_and_resumed([&] { return std::make_unique<DdpoTask>(c, dir_->path(), log_); }, c.trainer, ddpo_config_json(c), runs.file("run"), 1);
  ASSERT_EQ(straight.size(), resumed.size());
  for (const auto& [name, t] : straight) EXPECT_TRUE(at::equal(t, resumed.at(name))) << name;
  EXPECT_EQ(straight.at("ppo/round/updates_done").item<int64_t>(), 2);
  EXPECT_EQ(straight.at("ppo/round/states").size(1), 4);  // K + 1 states of each trajectory
  // The LoRA adapters moved (B starts at zero).
  bool moved = false;
  for (const auto& [name, t] : straight)
    if (name.find("lora_B") != std::string::npos) moved = moved || t.abs().sum().item<double>() > 0;
  EXPECT_TRUE(moved);

  const std::vector<Json> rows = read_metrics(runs.file("run_straight") + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 4u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].at("new_round").get<double>(), i % 2 == 0 ? 1.0 : 0.0) << i;
    if (i % 2 == 0) {
      EXPECT_EQ(rows[i].at("clip_fraction").get<double>(), 0.0) << i;
      EXPECT_LT(rows[i].at("approx_kl").get<double>(), 1e-10) << i;
    }
    for (const char* key : {"advantage_abs_mean", "loss", "clip_fraction", "approx_kl", "grad_norm"}) EXPECT_TRUE(rows[i].contains(key)) << key;
    for (const char* key : {"reward", "reward_std", "reward/brightness"}) EXPECT_EQ(rows[i].contains(key), i % 2 == 0) << key;  // once a round
  }
}

// A short RLCM run (full fine-tune, lr 3e-4, 16 rounds of 16) raises the mean brightness of its
// samples (the tiny random decoder's images sit near 0: here from 0.009 to 0.022); the job
// exports an LCM whose recipe samples as trained (lcm, its timesteps, guidance 3).
TEST_F(PpoWorld, RlcmRaisesMeanBrightness) {
  const OneThread one_thread;
  TempDir runs;
  RlcmConfig c = rlcm();
  c.generator.lora = false;
  c.per_prompt_stat_tracking = false;
  c.trainer.lr = 3e-4;
  c.batch_size = 16;
  c.micro_batch = 16;
  c.trainer.max_steps = 16;
  c.trainer.checkpoint_every = 16;
  save_json_file(runs.file("rlcm.json"), rlcm_config_json(c));
  TrainJobOptions o;
  o.method = "rlcm";
  o.config_file = runs.file("rlcm.json");
  o.model_dir = lcm_dir();
  o.out = runs.file("run");
  o.evaluate = false;
  const TrainJobResult result = run_train_job(o, log_);
  const std::vector<Json> rows = read_metrics(result.run_dir + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 16u);
  const auto [first, last] = testing::first_and_last_means(rows, "reward", 4);
  EXPECT_GT(last, 1.5 * first + 0.002) << "first rounds " << first << ", last rounds " << last;
  const Pipeline p = load_pipeline(result.generator_dir, {}, log_);
  EXPECT_EQ(p.scheduler.recipe.sampler, "lcm");
  EXPECT_EQ(p.scheduler.recipe.timesteps, c.generator.timesteps);
  EXPECT_EQ(p.scheduler.recipe.guidance_scale, 3.0);
}

TEST_F(PpoWorld, ConfigErrorsNameTheKey) {
  auto ddpo_error = [](const Json& j, const std::string& needle) {
    return testing::throws_error_containing([&] {
      ConfigReader r(j, "ddpo.json");
      read_ddpo_config(r);
    }, needle);
  };
  auto rlcm_error = [](const Json& j, const std::string& needle) {
    return testing::throws_error_containing([&] {
      ConfigReader r(j, "rlcm.json");
      read_rlcm_config(r);
    }, needle);
  };
  EXPECT_TRUE(ddpo_error({{"batch_size", 6}, {"updates_per_round", 4}}, "multiple of updates_per_round"));
  EXPECT_TRUE(ddpo_error({{"stat_buffer", 8}, {"stat_min_count", 9}}, "stat_min_count 9 > stat_buffer 8"));
  EXPECT_TRUE(ddpo_error({{"clip_range", 0}}, "clip_range"));
  EXPECT_TRUE(ddpo_error({{"clip_range", NAN}}, "clip_range"));
  EXPECT_TRUE(ddpo_error({{"micro_batch", 0}}, "micro_batch"));
  EXPECT_TRUE(ddpo_error({{"generator", {{"eta", 0.0}}}}, "DDPO needs generator.eta > 0"));
  EXPECT_TRUE(ddpo_error({{"generator", {{"sampler", "lcm"}}}}, "last_step 'zero'"));
  EXPECT_TRUE(ddpo_error({{"generator", {{"sampler", "lcm"}, {"last_step", "stay"}}}}, "DDPO's policy is the DDIM sampler"));
  EXPECT_TRUE(rlcm_error({{"generator", {{"sampler", "ddim"}, {"last_step", "end"}}}}, "RLCM's policy is an LCM"));
  EXPECT_TRUE(rlcm_error({{"generator", {{"sampler", "ddim"}}}}, "last_step 'stay'"));
  EXPECT_TRUE(rlcm_error({{"rewards", {{"world.jpeg", -1}}}}, "rewards.world.jpeg"));
  // RLCM on a UNet without a guidance embedding: the error says what to start from.
  EXPECT_TRUE(testing::throws_error_containing([&] { RlcmTask(rlcm(), dir_->path(), log_); }, "no guidance embedding"));
}

// An LCM whose last step outputs f (last_step "end") has no density there: the first round says so
// instead of training on nothing.
TEST_F(PpoWorld, DeterministicPolicyStepIsAnError) {
  TempDir runs;
  RlcmConfig c = rlcm();
  c.generator.last_step = "end";
  RlcmTask task(c, lcm_dir(), log_);
  const RunDir run = RunDir::create(runs.file("run"), false);
  EXPECT_TRUE(testing::throws_error_containing([&] { Trainer(c.trainer, run, log_).run(task, false); }, "is deterministic"));
}

}  // namespace
}  // namespace rewardgen
