#pragma once
// The one trainer loop (design §7, style rule 8). A method fills TrainTask: it owns its models
// and computes losses; the loop owns the optimizer, learning rate, gradient clipping, the NaN
// guard, metrics, progress, checkpoints and resume. A resumed run equals the uninterrupted one.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/run_dir.h"
#include "train/adamw.h"

namespace rewardgen {

class ConfigReader;
class Logger;

struct TrainerConfig {
  int64_t max_steps = 1000;
  int64_t checkpoint_every = 100;  // and always after the last step
  int keep_last = 3;               // checkpoints kept on disk
  int64_t log_every = 1;           // a metrics.jsonl row every N steps
  double lr = 1e-4;
  std::string lr_schedule = "constant";  // constant | cosine (after warmup)
  int64_t warmup_steps = 0;              // linear from lr/warmup_steps to lr
  double min_lr_ratio = 0.0;             // cosine floor, as a fraction of lr
  double grad_clip = 1.0;                // global L2 norm; 0 disables
  uint64_t seed = 0;                     // of the run's CPU generator
  AdamWOptions adam;                     // adam.lr is overwritten by the schedule each step
};

void read_trainer_config(ConfigReader& reader, TrainerConfig& config);  // keys as the members
nlohmann::json trainer_config_json(const TrainerConfig& config);
double learning_rate(const TrainerConfig& config, int64_t step);  // step counts from 0

// Thrown when a loss, gradient or metric is NaN or infinite.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

// What one step of the loop hands to the method.
class StepContext {
 public:
  StepContext(AdamW& optimizer, at::Generator& generator, double grad_clip, int64_t step)
      : optimizer_(optimizer), generator_(generator), grad_clip_(grad_clip), step_(step) {}

  at::Generator& generator() { return generator_; }  // the only randomness a method may use
  int64_t step() const { return step_; }

  // backward(loss), NaN guard, clip, optimizer step, zero grad; may be called several times per
  // step (PPO inner epochs). Returns the gradient norm before clipping.
  double optimize(const at::Tensor& loss);
  double last_grad_norm() const { return last_grad_norm_; }

 private:
  AdamW& optimizer_;
  at::Generator& generator_;
  double grad_clip_;
  int64_t step_;
  double last_grad_norm_ = 0.0;
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual NamedTensors trainable_parameters() = 0;
  // Everything the method needs to resume exactly (modules, trackers), under names it chooses.
  virtual void save_state(TensorMap& out) const = 0;
  virtual void load_state(const TensorMap& in) = 0;
  // One step; returns named scalars for metrics.jsonl (the first is shown on the progress bar).
  virtual MetricsWriter::Values train_step(StepContext& context) = 0;
};

struct TrainSummary {
  int64_t first_step = 0, last_step = 0;  // steps completed before this run and after it
  std::string last_checkpoint;
  double wall_time = 0.0;  // seconds, including the time of the runs it resumed
};

class Trainer {
 public:
  Trainer(TrainerConfig config, RunDir run, const Logger& log);
  // Runs until config.max_steps, or until `stop_at` steps are done when 0 < stop_at < max_steps
  // (a planned interruption: the schedule still spans max_steps). `resume` restores the newest
  // valid checkpoint first.
  TrainSummary run(TrainTask& task, bool resume, int64_t stop_at = 0);

 private:
  TrainerConfig config_;
  RunDir run_;
  const Logger& log_;
};

}  // namespace rewardgen
