#pragma once
// The one trainer loop (docs/design.md, "The trainer loop"). A method fills TrainTask: it owns its models
// and computes losses; the loop owns the optimizer, learning rate, gradient clipping, the NaN
// guard, metrics, progress, checkpoints and resume. A resumed run equals the uninterrupted one.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "dist/batch_shard.h"
#include "io/run_dir.h"
#include "train/adamw.h"

namespace torch::nn {
class Module;
}

namespace rewardgen {

class Collective;
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
  double max_minutes = 0;                // wall-clock budget over all resumed runs; 0 = none (stops after a step, checkpointed)
  int64_t eval_every = 0;                // TrainTask::evaluate every N steps (and after the last); 0 = never
  // Steps whose loss, gradient or metric is NaN or infinite that are skipped (no update, a warning)
  // before the next such step stops the run; counted over resumes. One process only: under a
  // data-parallel launch every non-finite step stops the run (the ranks would part ways).
  int64_t skip_nonfinite = 0;
  // Every step draws the randomness of the first (the run's generator reset to `seed`): the same
  // prompts, noise and η — the "overfit one batch" check. A method that cannot climb its reward on
  // one repeated batch will not climb it on fresh ones (docs/r0.md, "One batch").
  bool repeat_batch = false;
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

// A set of parameters with its own optimizer (DI* trains a generator and a fake score, each with
// its own Adam). Checkpoints keep the optimizer state of group "" under "optimizer/", of the
// others under "optimizer/<name>/".
struct ParamGroup {
  std::string name;
  NamedTensors parameters;
  std::optional<AdamWOptions> adam;  // default: the trainer's (its lr is replaced by the schedule)
  double lr_scale = 1.0;             // this group's lr = lr_scale × the schedule's
  double grad_clip = -1;             // global L2 norm of this group; < 0: the trainer's grad_clip
};

// An EMA the loop keeps after every step (train/ema.h): ema ← d·ema + (1 − d)·model.
struct EmaPair {
  torch::nn::Module* ema = nullptr;
  const torch::nn::Module* model = nullptr;
  double decay = 0.999;
};

// What one step of the loop hands to the method.
class StepContext {
 public:
  struct Group {
    std::string name;
    AdamW* optimizer;
    double grad_clip;
    double last_grad_norm = 0.0;
  };
  // `collective`: the data-parallel process group (null: one process), whose ranks' gradients are
  // averaged before each optimizer step; `shard`: this rank's part of the global batch.
  StepContext(std::vector<Group> groups, at::Generator& generator, int64_t step, Collective* collective = nullptr,
              BatchShard shard = {})
      : groups_(std::move(groups)), generator_(generator), step_(step), collective_(collective), shard_(shard) {}

  at::Generator& generator() { return generator_; }  // the only randomness a method may use
  int64_t step() const { return step_; }
  // A method draws every random quantity of the global batch (shard().global(B) rows, the same on
  // every rank) and keeps shard().slice(...) of it: its loss is then a mean over its own B rows, and
  // the average of the ranks' gradients is that of one process over the global batch.
  const BatchShard& shard() const { return shard_; }
  Collective* collective() const { return collective_; }  // statistics over all ranks (PPO); null: one process

  // loss.backward() with the NaN guard; gradients accumulate until optimizer_step() (gradient accumulation
  // over PPO's timesteps, or two losses into two groups).
  void backward(const at::Tensor& loss);
  // The same for a loss whose gradient at an intermediate `output` is already taken apart (DI*'s two
  // terms at x̂₀): the guard on `loss`, then output.backward(output_gradient) through the rest of the
  // graph, the parameters' gradient of `loss` by the chain rule.
  void backward(const at::Tensor& loss, const at::Tensor& output, const at::Tensor& output_gradient);
  // Clip, NaN guard, optimizer step and zero grad for the group named `group`, or for every group
  // when `group` is empty. Returns that group's (or the first group's) norm before clipping.
  double optimizer_step(const std::string& group = "");
  void zero_grad();  // every group
  // zero_grad, backward(loss), optimizer_step(): one whole update; may be called several times per step
  // (PPO inner epochs). Returns the gradient norm before clipping.
  double optimize(const at::Tensor& loss);
  double last_grad_norm() const;                        // of the first group
  std::vector<std::pair<std::string, double>> grad_norms() const;  // per group

 private:
  double step_group(Group& group);
  void average_gradients(Group& group);  // over the ranks (data-parallel)
  std::vector<Group> groups_;
  at::Generator& generator_;
  int64_t step_;
  Collective* collective_;
  BatchShard shard_;
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  // One group of the trainer's options (the common case), or several through parameter_groups.
  virtual NamedTensors trainable_parameters() { return {}; }
  virtual std::vector<ParamGroup> parameter_groups() { return {ParamGroup{"", trainable_parameters(), std::nullopt, 1.0, -1}}; }
  // EMAs the loop updates after each step; their modules are saved by save_state like any other.
  virtual std::vector<EmaPair> ema_pairs() { return {}; }
  // The periodic evaluation (TrainerConfig::eval_every) after `steps_done` steps, e.g. checker
  // accuracy on a fixed prompt subset; its values go into that step's metrics row. `samples_dir` is
  // the run's samples/ folder, for grids a person can look at.
  virtual MetricsWriter::Values evaluate(int64_t steps_done, const std::string& samples_dir) { return {}; }
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

// The run folder of a job (RunDir::create; `initialize`, e.g. writing config.json, runs right
// after). Under a data-parallel launch, rank 0 makes it while the others wait, then they open it
// without writing (an error on rank 0 ends them at that wait).
RunDir open_shared_run_dir(const std::string& out, bool resume, Collective* collective,
                           const std::function<void(const RunDir&)>& initialize);

class Trainer {
 public:
  // With a `collective` of N ranks (data-parallel, docs/distributed.md): every rank runs the loop on its
  // shard of each batch; gradients are averaged per parameter group before its optimizer step, the
  // step's metrics averaged, and rank 0 decides when to stop; rank 0 alone evaluates and writes
  // metrics, samples and checkpoints (no collective inside a write), and every rank resumes from
  // the same checkpoint. Null: one process.
  Trainer(TrainerConfig config, RunDir run, const Logger& log, Collective* collective = nullptr);
  // Runs until config.max_steps, or until `stop_at` steps are done when 0 < stop_at < max_steps
  // (a planned interruption: the schedule still spans max_steps). `resume` restores the newest
  // valid checkpoint first.
  TrainSummary run(TrainTask& task, bool resume, int64_t stop_at = 0);

 private:
  TrainerConfig config_;
  RunDir run_;
  const Logger& log_;
  Collective* collective_;
};

}  // namespace rewardgen
