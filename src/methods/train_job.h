#pragma once
// The training job every method shares (docs/design.md, docs/runs.md): config -> run folder -> train -> export ->
// evaluate. A run folder holds config.json (the method, the model trained from and the resolved
// method config), metrics.jsonl, checkpoints/, generator/ (the exported pipeline, sampling as
// trained with no flags) and eval/ (`rewardgen eval` of generator/ on the held-out prompts).
#include <string>
#include <vector>

#include "io/json_config.h"
#include "train/trainer.h"

namespace rewardgen {

class Logger;

struct TrainJobOptions {
  std::string method = "r0";
  std::string config_file;  // a JSON object with the method's keys; empty: its defaults
  std::string model_dir;    // the pipeline trained from; empty: the shipped world teacher
  std::string out;          // the run folder
  double minutes = 0;       // wall-clock budget of the training over all resumes (0: the config's)
  int64_t skip_nonfinite = -1;  // non-finite steps skipped before one stops the run (-1: the config's)
  bool resume = false;      // continue the run in `out` from its newest checkpoint
  int64_t eval_limit = 0;   // task-balanced evaluation prompts after training (0: all 504)
  bool evaluate = true;
  // cpu | cuda | cuda:N: where the models train and the final evaluation samples. A run may resume
  // on another device: checkpoints hold CPU tensors, and the run's randomness is drawn on the CPU.
  std::string device = "cpu";
  // Under a torchrun-style launch (RANK, WORLD_SIZE, ...; docs/distributed.md): how long a rank waits
  // for the others (the rendezvous, each all-reduce: rank 0's periodic evaluation and checkpoint
  // writes must fit in it) before it ends with an error.
  double dist_timeout_s = 1800;
};

struct TrainJobResult {
  std::string run_dir, generator_dir, eval_dir;
  TrainSummary summary;
  Json eval;  // eval.json's content (null when not evaluated)
  bool exported = false;  // false on the ranks other than 0 of a data-parallel launch: rank 0 exports and evaluates
};

// Everything is validated (method, config keys and ranges, minutes, model folder) before the run
// folder is created or anything is written. Under a multi-process launch every rank calls it: the
// ranks join one process group, check that they resolved the same job, and train data-parallel
// (rank 0 writes the run folder, exports and evaluates).
TrainJobResult run_train_job(const TrainJobOptions& options, const Logger& log);

// How long one training step of `method` takes (`rewardgen bench`): `steps` steps (>= 2) of its
// default config from `model_dir` ("" : its shipped start), no checkpoint before the end and no
// evaluation, in `work_dir`/<method> (removed first and afterwards: a timing, not a result); the
// mean wall-clock seconds of the steps after the first.
double time_method_steps(const std::string& method, int64_t steps, const std::string& work_dir, const std::string& model_dir,
                         const Logger& log);

// `rewardgen train --help`'s listing: every method, its line of help and its config with defaults.
// Only the methods named in `only`, when not empty.
std::string describe_methods(const std::vector<std::string>& only = {});

}  // namespace rewardgen
