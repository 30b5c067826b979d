#include "train/trainer.h"

#include <gtest/gtest.h>
#include <torch/nn.h>
#include <ATen/CPUGeneratorImpl.h>

#include <signal.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <sstream>

#include "core/interrupt.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "train/checkpoint.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

struct RegressionNetImpl : torch::nn::Module {
  RegressionNetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(4, 16));
    fc2 = register_module("fc2", torch::nn::Linear(16, 1));
    batches_seen = register_buffer("batches_seen", at::zeros({1}));
  }
  at::Tensor forward(const at::Tensor& x) { return fc2(at::tanh(fc1(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  at::Tensor batches_seen;
};
TORCH_MODULE(RegressionNet);

// A small task that uses everything a method does: the run's generator (data and a dropout-like
// mask), a buffer updated each step, the optimizer. `fail_at` / `nan_at` / `interrupt_at` simulate a
// crash / NaN / Ctrl-C at that step.
class RegressionTask : public TrainTask {
 public:
  explicit RegressionTask(int64_t fail_at = -1, int64_t nan_at = -1, int64_t interrupt_at = -1)
      : fail_at_(fail_at), nan_at_(nan_at), interrupt_at_(interrupt_at) {
    at::manual_seed(42);  // identical initial weights in every run of a test
    net_ = RegressionNet();
  }
  NamedTensors trainable_parameters() override {
    NamedTensors out;
    for (const auto& p : net_->named_parameters()) out.emplace_back(p.key(), p.value());
    return out;
  }
  void save_state(TensorMap& out) const override { add_module_state(out, "task/net/", *net_); }
  void load_state(const TensorMap& in) override { load_module_state(in, "task/net/", *net_); }
  MetricsWriter::Values train_step(StepContext& ctx) override {
    if (ctx.step() + 1 == fail_at_) throw std::runtime_error("simulated crash");
    if (ctx.step() + 1 == interrupt_at_) std::raise(SIGINT);  // Ctrl-C in the middle of the step
    const at::Tensor x = at::randn({8, 4}, ctx.generator());
    const at::Tensor keep = at::bernoulli(at::full({8, 1}, 0.8), ctx.generator());
    const at::Tensor target = x.sum(1, true).sin();
    at::Tensor loss = ((net_->forward(x) - target).pow(2) * keep).mean();
    if (ctx.step() + 1 == nan_at_) loss = loss * NAN;
    ctx.optimize(loss);
    {
      at::NoGradGuard no_grad;
      net_->batches_seen.add_(1);
    }
    return {{"loss", loss.item<double>()}};
  }
  TensorMap parameters() const {
    TensorMap out;
    add_module_state(out, "", *net_);
    return out;
  }

 private:
  RegressionNet net_{nullptr};
  int64_t fail_at_, nan_at_, interrupt_at_;
};

TrainerConfig small_config(int64_t max_steps) {
  TrainerConfig c;
  c.max_steps = max_steps;
  c.checkpoint_every = 4;
  c.lr = 1e-2;
  c.lr_schedule = "cosine";
  c.warmup_steps = 2;
  c.seed = 7;
  return c;
}

// A 12-step run (cosine schedule over 12 steps), stopped after `stop_at` steps when given.
TensorMap train(const std::string& root, bool resume, int64_t stop_at = 0, RegressionTask task = RegressionTask()) {
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  const RunDir run = RunDir::create(root, resume);
  if (!resume) run.write_config(trainer_config_json(small_config(12)));
  Trainer trainer(small_config(12), run, log);
  trainer.run(task, resume, stop_at);
  return task.parameters();
}

void expect_identical(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name << " differs";
}

std::vector<double> losses(const std::string& metrics_path) {
  std::vector<double> out;
  for (const auto& row : read_metrics(metrics_path)) out.push_back(row["loss"].get<double>());
  return out;
}

TEST(Trainer, ResumedRunEqualsTheUninterruptedOne) {
  TempDir tmp;
  // 2N straight vs N + resume + N (N = 6, checkpoints every 4 and at the end).
  const TensorMap straight = train(tmp.file("straight"), false);
  train(tmp.file("split"), false, /*stop_at=*/6);
  const TensorMap resumed = train(tmp.file("split"), true);
  expect_identical(straight, resumed);
  EXPECT_EQ(losses(tmp.file("straight/metrics.jsonl")), losses(tmp.file("split/metrics.jsonl")));
  EXPECT_EQ(resumed.at("batches_seen").item<float>(), 12.f);  // buffers are restored too
}

TEST(Trainer, ACrashedRunResumesFromItsLastCheckpointExactly) {
  TempDir tmp;
  const TensorMap straight = train(tmp.file("straight"), false);
  EXPECT_THROW(train(tmp.file("crash"), false, 0, RegressionTask(/*fail_at=*/11)), std::runtime_error);
  EXPECT_EQ(read_metrics(tmp.file("crash/metrics.jsonl")).size(), 10u);  // steps 1..10 logged, saved at 8
  const TensorMap resumed = train(tmp.file("crash"), true);
  expect_identical(straight, resumed);
  EXPECT_EQ(losses(tmp.file("straight/metrics.jsonl")), losses(tmp.file("crash/metrics.jsonl")));
}

TEST(Trainer, ASignalEndsTheRunAfterItsStepWithACheckpointAndTheResumeIsExact) {
  TempDir tmp;
  const TensorMap straight = train(tmp.file("straight"), false);
  try {
    train(tmp.file("signal"), false, 0, RegressionTask(-1, -1, /*interrupt_at=*/6));
    ADD_FAILURE() << "the run went on after SIGINT";
  } catch (const InterruptedError& e) {
    EXPECT_EQ(e.signal(), SIGINT);
    EXPECT_NE(std::string(e.what()).find("stopped by SIGINT after step 6; the checkpoint is "), std::string::npos) << e.what();
  }
  CheckpointManager checkpoints(tmp.file("signal/checkpoints"), 3);
  ASSERT_FALSE(checkpoints.list().empty());
  EXPECT_EQ(checkpoints.list().back().first, 6);  // the step the signal fell in, though checkpoints come every 4
  EXPECT_EQ(read_metrics(tmp.file("signal/metrics.jsonl")).size(), 6u);
  struct sigaction now {};
  sigaction(SIGINT, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);  // the handler is the process's again
  expect_identical(straight, train(tmp.file("signal"), true));
  EXPECT_EQ(losses(tmp.file("straight/metrics.jsonl")), losses(tmp.file("signal/metrics.jsonl")));
}

TEST(Trainer, StopsOnANonFiniteLossAndKeepsTheLastGoodCheckpoint) {
  TempDir tmp;
  EXPECT_TRUE(throws_error_containing([&] { train(tmp.file("nan"), false, 0, RegressionTask(-1, /*nan_at=*/7)); },
                                      "training stopped at step 7: the loss is nan; the last good checkpoint is "));
  CheckpointManager checkpoints(tmp.file("nan/checkpoints"), 3);
  const auto all = checkpoints.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].first, 4);
  // Resuming from it reproduces the clean run's first 6 steps.
  const TensorMap six = train(tmp.file("six"), false, 6);
  expect_identical(six, train(tmp.file("nan"), true, 6));
}

TEST(Trainer, SkipsAsManyNonFiniteStepsAsAllowedThenStops) {
  TempDir tmp;
  std::ostringstream log_text;
  Logger log(LogLevel::warn, log_text);
  TrainerConfig config = small_config(12);
  config.skip_nonfinite = 1;
  {
    RegressionTask task(-1, /*nan_at=*/7);
    const RunDir run = RunDir::create(tmp.file("skip"), false);
    run.write_config(trainer_config_json(config));
    Trainer(config, run, log).run(task, false);
    for (const auto& [name, t] : task.parameters()) EXPECT_TRUE(at::isfinite(t).all().item<bool>()) << name;
    EXPECT_EQ(task.parameters().at("batches_seen").item<float>(), 11.f);  // step 7 made no update
  }
  EXPECT_NE(log_text.str().find("step 7 skipped: the loss is nan (1 of 1 allowed skips used)"), std::string::npos) << log_text.str();
  std::vector<int64_t> steps;
  for (const auto& row : read_metrics(tmp.file("skip/metrics.jsonl"))) steps.push_back(row["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12}));
  // The allowance counts over resumes: the skip before the checkpoint at 8 is remembered.
  config.max_steps = 16;
  RegressionTask again(-1, /*nan_at=*/14);
  EXPECT_TRUE(throws_error_containing([&] { Trainer(config, RunDir::create(tmp.file("skip"), true), log).run(again, true); },
                                      "training stopped at step 14: the loss is nan; the last good checkpoint is"));
}

// The wall-clock budget counts over resumes: a resume whose budget the earlier launches spent says
// so and runs no step (it used to end at once without a word).
TEST(Trainer, AResumeWhoseBudgetIsSpentSaysSoAndRunsNoStep) {
  TempDir tmp;
  train(tmp.file("r"), false, 4);  // checkpoint at step 4, a few milliseconds of wall time
  TrainerConfig config = small_config(12);
  config.max_minutes = 1e-7;  // 6 microseconds: spent by the first launch
  std::ostringstream log_text;
  Logger log(LogLevel::info, log_text);
  RegressionTask task;
  Trainer(config, RunDir::create(tmp.file("r"), true), log).run(task, true);
  EXPECT_NE(log_text.str().find("the wall-clock budget counts over resumes and is spent"), std::string::npos) << log_text.str();
  EXPECT_EQ(read_metrics(tmp.file("r/metrics.jsonl")).size(), 4u);  // no step after the checkpoint
}

// A run stopped before its first checkpoint starts over on --resume (its metrics rows dropped) and
// ends as an uninterrupted run; one whose checkpoints are all unreadable is an error.
TEST(Trainer, ResumingWithoutACheckpointStartsOverAndUnreadableOnesAreAnError) {
  TempDir tmp;
  RunDir::create(tmp.file("r"), false).write_config({});
  MetricsWriter(RunDir::create(tmp.file("r"), true).metrics_path(), false, 0).write(1, 0.5, {{"loss", 1.0}});  // a dead run's row
  const TensorMap straight = train(tmp.file("straight"), false, 6);
  expect_identical(straight, train(tmp.file("r"), true, 6));
  EXPECT_EQ(read_metrics(tmp.file("r/metrics.jsonl")).size(), 6u);

  CheckpointManager checkpoints(tmp.file("r/checkpoints"), 3);
  for (const auto& [step, path] : checkpoints.list()) std::filesystem::resize_file(path, 10);  // every one torn
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  Trainer trainer(small_config(4), RunDir::create(tmp.file("r"), true), log);
  RegressionTask task;
  EXPECT_TRUE(throws_error_containing([&] { trainer.run(task, true); }, "cannot resume: no valid checkpoint"));
}

// repeat_batch: every step draws what the first drew (the "overfit one batch" check); off, they differ.
TEST(Trainer, RepeatBatchDrawsTheFirstStepsRandomnessEveryStep) {
  struct DrawingTask : TrainTask {
    at::Tensor weight = at::zeros({1}).requires_grad_(true);
    std::vector<double> draws;
    NamedTensors trainable_parameters() override { return {{"weight", weight}}; }
    void save_state(TensorMap& out) const override { out["weight"] = weight.detach().clone(); }
    void load_state(const TensorMap& in) override {
      at::NoGradGuard no_grad;
      weight.copy_(in.at("weight"));
    }
    MetricsWriter::Values train_step(StepContext& ctx) override {
      const at::Tensor x = at::randn({1}, ctx.generator());
      draws.push_back(x.item<double>());
      ctx.optimize((weight - x).pow(2).sum());
      return {{"loss", 0.0}};
    }
  };
  for (const bool repeat : {true, false}) {
    TempDir tmp;
    std::ostringstream quiet;
    Logger log(LogLevel::warn, quiet);
    TrainerConfig config = small_config(5);
    config.repeat_batch = repeat;
    DrawingTask task;
    Trainer(config, RunDir::create(tmp.file("run"), false), log).run(task, false);
    ASSERT_EQ(task.draws.size(), 5u);
    at::Generator seeded = at::make_generator<at::CPUGeneratorImpl>(config.seed);
    EXPECT_EQ(task.draws[0], at::randn({1}, seeded).item<double>());  // the first step draws from the seed either way
    for (size_t i = 1; i < task.draws.size(); ++i) {
      if (repeat) EXPECT_EQ(task.draws[i], task.draws[0]) << "step " << i + 1;
      else EXPECT_NE(task.draws[i], task.draws[0]) << "step " << i + 1;
    }
  }
}

TEST(Checkpoints, KeepsTheLastKAndSkipsACorruptNewest) {
  TempDir tmp;
  CheckpointManager checkpoints(tmp.file("ckpt"), 2);
  for (int64_t step : {10, 20, 30}) checkpoints.save(step, {{"extra/x", at::full({3}, static_cast<float>(step))}});
  auto all = checkpoints.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 20);
  EXPECT_EQ(all[1].first, 30);
  std::filesystem::resize_file(all[1].second, std::filesystem::file_size(all[1].second) - 4);  // torn write
  std::ostringstream sink;
  const auto latest = checkpoints.load_latest(Logger(LogLevel::info, sink));
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 20);
  EXPECT_EQ(latest->tensors.at("extra/x")[0].item<float>(), 20.f);
  EXPECT_NE(sink.str().find("skipping unreadable checkpoint"), std::string::npos) << sink.str();
}

TEST(Checkpoints, UnfinishedSavesOfAKilledRunAreRemovedAndNothingElse) {
  TempDir tmp;
  CheckpointManager checkpoints(tmp.file("ckpt"), 3);
  checkpoints.save(4, {{"extra/x", at::ones({2})}});
  write_file_atomic(tmp.file("ckpt/step_00000008.safetensors.tmp.4242.0"), "half a file");
  write_file_atomic(tmp.file("ckpt/notes.txt"), "the user's");
  EXPECT_EQ(checkpoints.remove_unfinished_saves(), 1);
  EXPECT_FALSE(std::filesystem::exists(tmp.file("ckpt/step_00000008.safetensors.tmp.4242.0")));
  EXPECT_TRUE(std::filesystem::exists(tmp.file("ckpt/notes.txt")));
  ASSERT_EQ(checkpoints.list().size(), 1u);
  EXPECT_EQ(checkpoints.remove_unfinished_saves(), 0);
}

TEST(Checkpoints, ModuleStateLoadingIsStrict) {
  RegressionNet net;
  TensorMap state;
  add_module_state(state, "m/", *net);
  EXPECT_EQ(state.count("m/fc1.weight") + state.count("m/batches_seen"), 2u);
  state.erase("m/fc2.bias");
  EXPECT_TRUE(throws_error_containing([&] { load_module_state(state, "m/", *net); }, "missing tensor 'm/fc2.bias'"));
  state["m/fc2.bias"] = at::zeros({2});
  EXPECT_TRUE(throws_error_containing([&] { load_module_state(state, "m/", *net); }, "has shape [2], the model expects [1]"));
}

TEST(LearningRate, WarmupThenCosine) {
  TrainerConfig c;
  c.lr = 1.0;
  c.warmup_steps = 4;
  c.max_steps = 14;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.25);  // (0+1)/4
  EXPECT_DOUBLE_EQ(learning_rate(c, 3), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 13), 1.0);  // constant after warmup
  c.lr_schedule = "cosine";
  c.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(c, 4), 1.0);                       // start of the cosine
  EXPECT_NEAR(learning_rate(c, 9), 0.1 + 0.45 * (1 + 0.0), 1e-12);  // halfway: cos(π/2) = 0
  EXPECT_NEAR(learning_rate(c, 14), 0.1, 1e-12);                    // the floor
}

TEST(TrainerConfig, ReadsBackWhatItWritesAndRejectsBadValues) {
  TrainerConfig c = small_config(33);
  c.adam.weight_decay = 0.01;
  c.repeat_batch = true;
  const Json written = trainer_config_json(c);
  TrainerConfig back;
  ConfigReader reader(written, "config.json");
  read_trainer_config(reader, back);
  EXPECT_TRUE(reader.unknown_keys().empty());
  EXPECT_EQ(trainer_config_json(back), written);
  const Json bad = Json::parse(R"({"lr_schedule": "step"})");
  ConfigReader bad_reader(bad, "bad.json");
  EXPECT_TRUE(throws_error_containing([&] { read_trainer_config(bad_reader, back); },
                                      "bad.json: key 'lr_schedule' must be one of {constant, cosine}"));
}

}  // namespace
}  // namespace rewardgen
