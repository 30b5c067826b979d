#pragma once
// `rewardgen bench` with no sub-command: every speed figure of the project in one run, so that each
// ratio in it is taken in one sitting on one (noisy) machine — the fp32 GEMM peak; the UNet forward
// and training step as FLOP/s and MFU on the world teacher's and SD1.5 fifth-width configs; images/s
// of each shipped generator at its own recipe against the teacher at DDIM 25 and 50 + CFG; reward
// throughput (score, and score + backward where differentiable); a training step of each method.
// The result is JSON (bench.json) and a Markdown table.
#include <functional>
#include <string>
#include <vector>

#include "io/json_config.h"

namespace rewardgen {

class Logger;

struct BenchUnetRow {
  std::string name, config_file;
  int64_t batch = 32, latent_size = 16, text_tokens = 16;
};

struct BenchSuiteOptions {
  std::vector<BenchUnetRow> unets;        // default: bench_suite_unet_rows(kSourceBenchConfigsDir)
  std::string teacher;                    // "" : the shipped world teacher
  std::vector<int64_t> teacher_steps = {25, 50};
  double teacher_guidance = 3;
  std::vector<std::string> generators;    // pipeline folders with a sampling recipe; default: shipped_generators()
  std::vector<std::string> rewards = {"world.compositional", "world.clip", "world.clip_contrast", "world.jpeg"};
  // One training step of each method, timed by `time_method` (seconds a step; the CLI passes the
  // training job's time_method_steps: the methods room sits above this one).
  std::vector<std::string> methods;
  std::function<double(const std::string& method)> time_method;
  int64_t sample_images = 32, sample_batch = 32;
  int repeats = 2;                        // timed repetitions of each UNet / sampling / reward figure
  double gemm_seconds = 2;
};

// The world teacher's and the SD1.5 fifth-width UNet rows, their configs in `configs_dir`.
std::vector<BenchUnetRow> bench_suite_unet_rows(const std::string& configs_dir);
// The shipped generators: every folder under the world's models with a model_index.json and a recipe.
std::vector<std::string> shipped_generators();

// Runs every part (Error naming a bad option before any timing); `threads` is the count in force.
Json run_bench_suite(const BenchSuiteOptions& options, int threads, const Logger& log);
// The result as Markdown tables, one per part, each ratio from the same run; sampling speeds as
// multiples of the first teacher row's (DDIM 25 + CFG by default: "vs_teacher" in the JSON).
std::string bench_suite_markdown(const Json& result);

}  // namespace rewardgen
