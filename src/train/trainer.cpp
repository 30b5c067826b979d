#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/format.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/progress.h"
#include "dist/collective.h"
#include "io/json_config.h"
#include "train/checkpoint.h"
#include "train/ema.h"

namespace rewardgen {

void read_trainer_config(ConfigReader& r, TrainerConfig& c) {
  r.optional("max_steps", c.max_steps, at_least(1))
      .optional("checkpoint_every", c.checkpoint_every, at_least(1))
      .optional("keep_last", c.keep_last, at_least(1))
      .optional("log_every", c.log_every, at_least(1))
      .optional("lr", c.lr, Range{0, 10, true})  // (0, 10]: above, every optimizer step diverges (1e300 overflowed fp32)
      .optional_choice("lr_schedule", c.lr_schedule, {"constant", "cosine"})
      .optional("warmup_steps", c.warmup_steps, at_least(0))
      .optional("min_lr_ratio", c.min_lr_ratio, between(0, 1))
      .optional("grad_clip", c.grad_clip, at_least(0))
      .optional("eval_every", c.eval_every, at_least(0))
      .optional("max_minutes", c.max_minutes, Range{0, 1e6})
      .optional("skip_nonfinite", c.skip_nonfinite, between(0, 1000000))
      .optional("repeat_batch", c.repeat_batch);
  int64_t seed = static_cast<int64_t>(c.seed);
  r.optional("seed", seed, at_least(0));
  c.seed = static_cast<uint64_t>(seed);
  ConfigReader adam = r.child("adam");
  adam.optional("beta1", c.adam.beta1, Range{0, 1, false, true})
      .optional("beta2", c.adam.beta2, Range{0, 1, false, true})
      .optional("eps", c.adam.eps, Range{0, 1, true})
      .optional("weight_decay", c.adam.weight_decay, at_least(0))
      .optional("decoupled_weight_decay", c.adam.decoupled_weight_decay);
}

nlohmann::json trainer_config_json(const TrainerConfig& c) {
  return {{"max_steps", c.max_steps},       {"checkpoint_every", c.checkpoint_every},
          {"keep_last", c.keep_last},       {"log_every", c.log_every},
          {"lr", c.lr},                     {"lr_schedule", c.lr_schedule},
          {"warmup_steps", c.warmup_steps}, {"min_lr_ratio", c.min_lr_ratio},
          {"grad_clip", c.grad_clip},       {"seed", c.seed},
          {"eval_every", c.eval_every},     {"max_minutes", c.max_minutes},
          {"skip_nonfinite", c.skip_nonfinite},
          {"repeat_batch", c.repeat_batch},
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

namespace {
void check_finite_loss(const at::Tensor& loss) {
  const double value = loss.item<double>();
  if (!std::isfinite(value)) throw NonFiniteError(str("the loss is ", value));
}
}  // namespace

void StepContext::backward(const at::Tensor& loss) {
  check_finite_loss(loss);
  loss.backward();
}

void StepContext::backward(const at::Tensor& loss, const at::Tensor& output, const at::Tensor& output_gradient) {
  check_finite_loss(loss);
  output.backward(output_gradient);
}

void StepContext::average_gradients(Group& g) {
  // Every rank's gradient of this group, averaged (one all-reduce per dtype, LoRA's adapters
  // included: they are the group's parameters). The ranks must reduce the same tensors: a tensor
  // with a gradient on some rank only (a branch one shard did not take) gets zeros on the others.
  const NamedTensors& parameters = g.optimizer->parameters();
  at::Tensor has_gradient = at::empty({static_cast<int64_t>(parameters.size())}, at::kDouble);
  for (size_t i = 0; i < parameters.size(); ++i) has_gradient[static_cast<int64_t>(i)] = parameters[i].second.grad().defined() ? 1.0 : 0.0;
  collective_->all_reduce_mean({has_gradient});
  std::vector<at::Tensor> gradients;
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (has_gradient[static_cast<int64_t>(i)].item<double>() == 0.0) continue;
    const at::Tensor& parameter = parameters[i].second;
    if (!parameter.grad().defined()) parameter.mutable_grad() = at::zeros_like(parameter);
    gradients.push_back(parameter.grad());
  }
  collective_->all_reduce_mean(gradients);
}

double StepContext::step_group(Group& g) {
  if (collective_ != nullptr) average_gradients(g);
  g.last_grad_norm = clip_grad_norm(g.optimizer->parameters(), g.grad_clip);
  if (!std::isfinite(g.last_grad_norm))
    throw NonFiniteError(str("the gradient norm", g.name.empty() ? "" : " of group '" + g.name + "'", " is ", g.last_grad_norm));
  g.optimizer->step();
  g.optimizer->zero_grad();
  return g.last_grad_norm;
}

double StepContext::optimizer_step(const std::string& group) {
  if (group.empty()) {
    for (Group& g : groups_) step_group(g);
    return groups_.front().last_grad_norm;
  }
  for (Group& g : groups_)
    if (g.name == group) return step_group(g);
  throw Error(str("no parameter group named '", group, "'"));
}

void StepContext::zero_grad() {
  for (Group& g : groups_) g.optimizer->zero_grad();
}

double StepContext::optimize(const at::Tensor& loss) {
  zero_grad();
  backward(loss);
  return optimizer_step();
}

double StepContext::last_grad_norm() const { return groups_.empty() ? 0.0 : groups_.front().last_grad_norm; }

std::vector<std::pair<std::string, double>> StepContext::grad_norms() const {
  std::vector<std::pair<std::string, double>> out;
  for (const Group& g : groups_) out.emplace_back(g.name, g.last_grad_norm);
  return out;
}

RunDir open_shared_run_dir(const std::string& out, bool resume, Collective* collective,
                           const std::function<void(const RunDir&)>& initialize) {
  const bool writer = collective == nullptr || collective->rank() == 0;
  std::optional<RunDir> made;
  if (writer) {
    made = RunDir::create(out, resume);
    initialize(*made);
  }
  if (collective != nullptr) collective->barrier();
  return writer ? *made : RunDir::existing(out);
}

Trainer::Trainer(TrainerConfig config, RunDir run, const Logger& log, Collective* collective)
    : config_(std::move(config)), run_(std::move(run)), log_(log), collective_(collective) {}

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

// Rank 0's `value` on every rank (one process: as is): the ranks must leave the loop on the same step.
int rank0_decides(Collective* collective, int value) {
  if (collective == nullptr) return value;
  const at::Tensor vote = at::full({1}, collective->rank() == 0 ? static_cast<double>(value) * collective->size() : 0.0, at::kDouble);
  collective->all_reduce_mean({vote});
  return static_cast<int>(std::lround(vote.item<double>()));
}

// Why a run leaves its loop before max_steps, decided by rank 0.
constexpr int kGoOn = 0, kBudgetSpent = -1;  // else the signal that asked to stop

// A step's metrics averaged over the ranks (each a mean over its own shard of equal size: their
// mean is the global batch's).
void average_over_ranks(Collective* collective, MetricsWriter::Values& values) {
  if (collective == nullptr || values.empty()) return;
  at::Tensor packed = at::empty({static_cast<int64_t>(values.size())}, at::kDouble);
  for (size_t i = 0; i < values.size(); ++i) packed[static_cast<int64_t>(i)] = values[i].second;
  collective->all_reduce_mean({packed});
  for (size_t i = 0; i < values.size(); ++i) values[i].second = packed[static_cast<int64_t>(i)].item<double>();
}

}  // namespace

TrainSummary Trainer::run(TrainTask& task, bool resume, int64_t stop_at) {
  const int64_t last_step = stop_at > 0 ? std::min(stop_at, config_.max_steps) : config_.max_steps;
  CheckpointManager checkpoints(run_.checkpoints_dir(), config_.keep_last);
  const std::vector<ParamGroup> groups = task.parameter_groups();
  if (groups.empty()) throw Error("the training task has no parameter group");
  std::vector<std::unique_ptr<AdamW>> optimizers;
  for (const ParamGroup& g : groups) optimizers.push_back(std::make_unique<AdamW>(g.parameters, g.adam.value_or(config_.adam)));
  auto optimizer_prefix = [&](size_t i) { return groups[i].name.empty() ? std::string("optimizer/") : "optimizer/" + groups[i].name + "/"; };
  const std::vector<EmaPair> emas = task.ema_pairs();
  const bool writer = collective_ == nullptr || collective_->rank() == 0;  // the rank that writes files
  const BatchShard shard = collective_ == nullptr ? BatchShard{} : BatchShard{collective_->rank(), collective_->size()};
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
  const at::Tensor seed_state = generator.get_state();  // repeat_batch: every step starts from it
  TrainSummary summary;
  double wall_before = 0.0;
  int64_t skipped = 0;  // non-finite steps skipped, over resumes

  if (writer)
    if (const int removed = checkpoints.remove_unfinished_saves(); removed > 0)
      log_.info(str("removed ", removed, " unfinished checkpoint save(s) of an interrupted run from ", checkpoints.dir()));
  // A run interrupted before its first checkpoint starts over; one whose checkpoints are all
  // unreadable is an error (starting over would silently throw its training away).
  if (resume && checkpoints.list().empty()) {
    log_.warn(str("no checkpoint in '", checkpoints.dir(), "' yet (the run stopped before its first): starting it over from step 0"));
    resume = false;
  }
  if (resume) {
    const auto checkpoint = checkpoints.load_latest(log_);
    if (!checkpoint) throw Error(str("cannot resume: no valid checkpoint in '", checkpoints.dir(), "'"));
    task.load_state(checkpoint->tensors);
    for (size_t i = 0; i < groups.size(); ++i) optimizers[i]->load_state(checkpoint->tensors, optimizer_prefix(i));
    generator.set_state(checkpoint->tensors.at("rng/cpu"));
    summary.first_step = checkpoint->step;
    summary.last_checkpoint = checkpoint->path;
    if (const auto it = checkpoint->metadata.find("rewardgen.wall_time"); it != checkpoint->metadata.end())
      wall_before = std::stod(it->second);
    if (const auto it = checkpoint->metadata.find("rewardgen.skipped_nonfinite"); it != checkpoint->metadata.end())
      skipped = std::stoll(it->second);
    log_.info(str("resuming from ", checkpoint->path, " (step ", checkpoint->step, ")"));
  }
  if (collective_ != nullptr) collective_->check_same("the checkpoint resumed (its step)", std::to_string(summary.first_step));

  std::optional<MetricsWriter> metrics;
  if (writer) metrics.emplace(run_.metrics_path(), resume, summary.first_step);
  const auto t0 = std::chrono::steady_clock::now();
  auto wall_time = [&] { return wall_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto save = [&](int64_t steps_done) {
    if (!writer) return;
    TensorMap state;
    task.save_state(state);
    for (size_t i = 0; i < groups.size(); ++i) optimizers[i]->save_state(state, optimizer_prefix(i));
    state["rng/cpu"] = generator.get_state();
    summary.last_checkpoint = checkpoints.save(
        steps_done, state, {{"rewardgen.wall_time", std::to_string(wall_time())}, {"rewardgen.skipped_nonfinite", std::to_string(skipped)}});
  };

  const double budget = config_.max_minutes * 60.0;
  // With a wall-clock budget the bar counts seconds of it (the step is in the postfix), so that its
  // ETA is the budget's, not that of max_steps.
  const bool timed = budget > 0;
  // The budget counts over resumes (the checkpoint's wall time): say how much is left, so that a
  // resume given the first launch's --minutes does not end after seconds without a word.
  if (timed && summary.first_step > 0) {
    const double left_minutes = (budget - wall_before) / 60.0;
    const std::string spent = str(fixed_digits(wall_before / 60.0, 1), " of the ", config_.max_minutes, "-minute budget");
    if (left_minutes <= 0)
      log_.warn(str("the wall-clock budget counts over resumes and is spent (", spent,
                    "): no step will run; raise --minutes (trainer.max_minutes) to train longer"));
    else
      log_.info(str("wall-clock budget: ", spent, " spent before this launch, ", fixed_digits(left_minutes, 1), " min left"));
  }
  const int64_t bar_total = timed ? static_cast<int64_t>(std::ceil(budget)) : config_.max_steps;
  ProgressOptions bar_options;
  if (!writer) bar_options.mode = ProgressMode::off;  // one bar per launch: rank 0's
  ProgressBar bar(timed ? "train (s)" : "train", bar_total,
                  timed ? std::min(bar_total, static_cast<int64_t>(wall_before)) : summary.first_step, bar_options);
  const InterruptCatcher interrupts;
  auto stop_reason = [&] {
    const int reason = interrupts.signal() != 0 ? interrupts.signal() : budget > 0 && wall_time() >= budget ? kBudgetSpent : kGoOn;
    return rank0_decides(collective_, reason);
  };
  int64_t step = summary.first_step;
  int reason = stop_reason();
  bool stop = reason != kGoOn;
  for (; step < last_step && !stop; ++step) {
    const double lr = learning_rate(config_, step);
    std::vector<StepContext::Group> step_groups;
    for (size_t i = 0; i < groups.size(); ++i) {
      optimizers[i]->set_lr(lr * groups[i].lr_scale);
      step_groups.push_back({groups[i].name, optimizers[i].get(), groups[i].grad_clip < 0 ? config_.grad_clip : groups[i].grad_clip});
    }
    if (config_.repeat_batch) generator.set_state(seed_state);  // the same draws as step 1: one batch, overfitted
    StepContext context(std::move(step_groups), generator, step, collective_, shard);
    MetricsWriter::Values values;
    const int64_t done = step + 1;
    bool final_step = done == last_step;
    try {
      values = task.train_step(context);
      for (const EmaPair& pair : emas) ema_update(*pair.ema, *pair.model, pair.decay, step);
      average_over_ranks(collective_, values);
      // Decided before the evaluation, so that the step that spends the budget, or that a signal
      // ends, is always checkpointed.
      reason = stop_reason();
      final_step = reason != kGoOn || final_step;
      if (writer && config_.eval_every > 0 && (done % config_.eval_every == 0 || final_step)) {
        const MetricsWriter::Values evaluation = task.evaluate(done, run_.samples_dir());
        values.insert(values.end(), evaluation.begin(), evaluation.end());
      }
      check_finite(values);
    } catch (const NonFiniteError& e) {
      if (skipped >= config_.skip_nonfinite || collective_ != nullptr)
        throw Error(str("training stopped at step ", step + 1, ": ", e.what(), "; the last good checkpoint is ",
                        summary.last_checkpoint.empty() ? std::string("(none yet)") : summary.last_checkpoint,
                        skipped > 0 ? str(" (", skipped, " non-finite step(s) skipped before)") : std::string()));
      ++skipped;
      for (const auto& optimizer : optimizers) optimizer->zero_grad();  // a gradient of the failed step may remain
      log_.warn(str("step ", done, " skipped: ", e.what(), " (", skipped, " of ", config_.skip_nonfinite, " allowed skips used)"));
      reason = stop_reason();
      final_step = reason != kGoOn || final_step;
      if (done % config_.checkpoint_every == 0 || final_step) save(done);
      stop = final_step;
      continue;
    }
    values.emplace_back("lr", lr);
    for (const auto& [name, norm] : context.grad_norms()) values.emplace_back(name.empty() ? "grad_norm" : "grad_norm/" + name, norm);
    if (metrics && (done % config_.log_every == 0 || final_step)) metrics->write(done, wall_time(), values);
    if (timed)
      bar.update(std::min(bar_total, static_cast<int64_t>(wall_time())), str("step ", done, " ", progress_postfix(values)));
    else
      bar.update(done, progress_postfix(values));
    if (done % config_.checkpoint_every == 0 || final_step) save(done);
    stop = final_step;
  }
  bar.finish();
  summary.last_step = std::max(summary.first_step, step);
  summary.wall_time = wall_time();
  if (step < last_step && reason > 0)
    throw InterruptedError(reason, str("stopped by ", signal_name(reason), " after step ", summary.last_step, "; the checkpoint is ",
                                       summary.last_checkpoint.empty() ? std::string("(none: no step ran)") : summary.last_checkpoint,
                                       ": continue with --resume"));
  if (step < last_step && writer) log_.info(str("stopped at step ", step, ": the wall-clock budget of ", config_.max_minutes, " min is spent"));
  return summary;
}

}  // namespace rewardgen
