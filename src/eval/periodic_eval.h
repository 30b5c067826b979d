#pragma once
// The periodic evaluation every method's and the world teacher's training logs (docs/design.md,
// "Judging results"): the held-out checker's accuracy per task, the position control and FD on a
// task-balanced subset of the evaluation prompts, never only the reward being trained, and a grid a
// person can look at.
#include <string>

#include "io/run_dir.h"
#include "sampling/text_to_image.h"

namespace rewardgen {

class ClipVisionModel;

struct PeriodicEvalOptions {
  SamplerOptions sampler;
  int64_t prompts = 60;                    // task-balanced evaluation prompts
  const ClipVisionModel* encoder = nullptr;  // FD; null: no FD
  std::string grid_path;                   // a PNG of the evaluated images, a row per task; "" = none
  std::string prefix;                      // metric names: "<prefix>accuracy/<task>", "<prefix>eval/fd"
};

MetricsWriter::Values periodic_world_eval(const TextToImage& model, const PeriodicEvalOptions& options);

// "<samples_dir>/step_<N><suffix>.png": the grid file of the evaluation after `steps_done` steps.
std::string eval_grid_path(const std::string& samples_dir, int64_t steps_done, const std::string& suffix = "");

}  // namespace rewardgen
