#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "io/json_config.h"
#include "train/checkpoint.h"

namespace rewardgen {

void read_trainer_config(ConfigReader& r, TrainerConfig& c) {
  r.optional("max_steps", c.max_steps, at_least(1))
      .optional("checkpoint_every", c.checkpoint_every, at_least(1))
      .optional("keep_last", c.keep_last, at_least(1))
      .optional("log_every", c.log_every, at_least(1))
      .optional("lr", c.lr, positive())
      .optional_choice("lr_schedule", c.lr_schedule, {"constant", "cosine"})
      .optional("warmup_steps", c.warmup_steps, at_least(0))
      .optional("min_lr_ratio", c.min_lr_ratio, between(0, 1))
      .optional("grad_clip", c.grad_clip, at_least(0));
  int64_t seed = static_cast<int64_t>(c.seed);
  r.optional("seed", seed, at_least(0));
  c.seed = static_cast<uint64_t>(seed);
  ConfigReader adam = r.child("adam");
  adam.optional("beta1", c.adam.beta1, Range{0, 1, false, true})
      .optional("beta2", c.adam.beta2, Range{0, 1, false, true})
      .optional("eps", c.adam.eps, positive())
      .optional("weight_decay", c.adam.weight_decay, at_least(0))
      .optional("decoupled_weight_decay", c.adam.decoupled_weight_decay);
}

nlohmann::json trainer_config_json(const TrainerConfig& c) {
  return {{"max_steps", c.max_steps},       {"checkpoint_every", c.checkpoint_every},
          {"keep_last", c.keep_last},       {"log_every", c.log_every},
          {"lr", c.lr},                     {"lr_schedule", c.lr_schedule},
          {"warmup_steps", c.warmup_steps}, {"min_lr_ratio", c.min_lr_ratio},
          {"grad_clip", c.grad_clip},       {"seed", c.seed},
          {"adam",
           {{"beta1", c.adam.beta1},
            {"beta2", c.adam.beta2},
            {"eps", c.adam.eps},
            {"weight_decay", c.adam.weight_decay},
            {"decoupled_weight_decay", c.adam.decoupled_weight_decay}}}};
}

double learning_rate(const TrainerConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  if (c.lr_schedule == "constant") return c.lr;
  // Cosine from lr to min_lr_ratio·lr over the steps after warmup.
  const double span = static_cast<double>(std::max<int64_t>(1, c.max_steps - c.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  const double floor = c.min_lr_ratio * c.lr;
  return floor + 0.5 * (c.lr - floor) * (1 + std::cos(M_PI * progress));
}

double StepContext::optimize(const at::Tensor& loss) {
  const double value = loss.item<double>();
  if (!std::isfinite(value)) throw NonFiniteError(str("the loss is ", value));
  optimizer_.zero_grad();
  loss.backward();
  last_grad_norm_ = clip_grad_norm(optimizer_.parameters(), grad_clip_);
  if (!std::isfinite(last_grad_norm_)) throw NonFiniteError(str("the gradient norm is ", last_grad_norm_));
  optimizer_.step();
  optimizer_.zero_grad();
  return last_grad_norm_;
}

Trainer::Trainer(TrainerConfig config, RunDir run, const Logger& log)
    : config_(std::move(config)), run_(std::move(run)), log_(log) {}

namespace {

std::string progress_postfix(const MetricsWriter::Values& values) {
  if (values.empty()) return "";
  char text[96];
  std::snprintf(text, sizeof text, "%s=%.4g", values.front().first.c_str(), values.front().second);
  return text;
}

void check_finite(const MetricsWriter::Values& values) {
  for (const auto& [name, value] : values)
    if (!std::isfinite(value)) throw NonFiniteError(str("'", name, "' is ", value));
}

}  // namespace

TrainSummary Trainer::run(TrainTask& task, bool resume, int64_t stop_at) {
  const int64_t last_step = stop_at > 0 ? std::min(stop_at, config_.max_steps) : config_.max_steps;
  CheckpointManager checkpoints(run_.checkpoints_dir(), config_.keep_last);
  AdamW optimizer(task.trainable_parameters(), config_.adam);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
  TrainSummary summary;
  double wall_before = 0.0;

  if (resume) {
    const auto checkpoint = checkpoints.load_latest(log_);
    if (!checkpoint) throw Error(str("cannot resume: no valid checkpoint in '", checkpoints.dir(), "'"));
    task.load_state(checkpoint->tensors);
    optimizer.load_state(checkpoint->tensors, "optimizer/");
    generator.set_state(checkpoint->tensors.at("rng/cpu"));
    summary.first_step = checkpoint->step;
    summary.last_checkpoint = checkpoint->path;
    if (const auto it = checkpoint->metadata.find("rewardgen.wall_time"); it != checkpoint->metadata.end())
      wall_before = std::stod(it->second);
    log_.info(str("resuming from ", checkpoint->path, " (step ", checkpoint->step, ")"));
  }

  MetricsWriter metrics(run_.metrics_path(), resume, summary.first_step);
  const auto t0 = std::chrono::steady_clock::now();
  auto wall_time = [&] { return wall_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto save = [&](int64_t steps_done) {
    TensorMap state;
    task.save_state(state);
    optimizer.save_state(state, "optimizer/");
    state["rng/cpu"] = generator.get_state();
    summary.last_checkpoint = checkpoints.save(steps_done, state, {{"rewardgen.wall_time", std::to_string(wall_time())}});
  };

  ProgressBar bar("train", config_.max_steps, summary.first_step);
  for (int64_t step = summary.first_step; step < last_step; ++step) {
    const double lr = learning_rate(config_, step);
    optimizer.set_lr(lr);
    StepContext context(optimizer, generator, config_.grad_clip, step);
    MetricsWriter::Values values;
    try {
      values = task.train_step(context);
      check_finite(values);
    } catch (const NonFiniteError& e) {
      throw Error(str("training stopped at step ", step + 1, ": ", e.what(), "; the last good checkpoint is ",
                      summary.last_checkpoint.empty() ? std::string("(none yet)") : summary.last_checkpoint));
    }
    const int64_t done = step + 1;
    values.emplace_back("lr", lr);
    values.emplace_back("grad_norm", context.last_grad_norm());
    if (done % config_.log_every == 0 || done == last_step) metrics.write(done, wall_time(), values);
    bar.update(done, progress_postfix(values));
    if (done % config_.checkpoint_every == 0 || done == last_step) save(done);
  }
  bar.finish();
  summary.last_step = std::max(summary.first_step, last_step);
  summary.wall_time = wall_time();
  return summary;
}

}  // namespace rewardgen
