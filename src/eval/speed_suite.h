#pragma once
// The UNet speed table of docs/performance.md in one run: for each row (a config, batch,
// latent size and text length), our forward and training step in fp32 and, where the CPU has fast
// bf16, in bf16; and, when a diffusers timing script is available, diffusers' fp32 times measured
// in the same run on the same threads, so that every figure is a ratio taken in one sitting.
#include <optional>
#include <string>
#include <vector>

#include "eval/unet_bench.h"

namespace rewardgen {

struct SpeedRow {
  std::string key;          // "world": what `bench speed --rows` calls it
  std::string name;         // "world teacher"
  std::string config_file;  // a diffusers UNet config.json
  int64_t batch = 1, latent_size = 16, text_tokens = 77;
  bool train = true;        // also time a training step (full SD1.5 at 64x64: forward only)
};

// The rows of docs/performance.md, with their configs under `configs_dir` (bench/configs).
std::vector<SpeedRow> speed_rows(const std::string& configs_dir);

struct DiffusersTimes {
  double forward_s = 0, train_step_s = 0;  // means over the timed iterations; train 0 when not run
  double forward_best_s = 0, train_step_best_s = 0;  // the fastest iteration of each
};

// Mean and best of a time over rounds of the same number of repetitions: the mean of the rounds'
// means, the least of their bests. `bench speed --rounds` alternates ours and diffusers' timings
// round by round, so that a slow minute of a noisy machine falls on both sides.
struct RoundTimes {
  void add(double mean_s, double best_s);  // one round's figures; zeros (not measured) are skipped
  double mean_s() const { return rounds_ > 0 ? sum_of_means_ / rounds_ : 0.0; }
  double best_s() const { return rounds_ > 0 ? best_ : 0.0; }

 private:
  double sum_of_means_ = 0, best_ = 0;
  int rounds_ = 0;
};

// Times diffusers' UNet2DConditionModel on /usr/bin/python3 with the script at `timer_script`
// (../shared/tools/diffusers_baseline/time_unet.py; it reads DIFFUSERS_GIT_DIR), `threads` threads,
// `iters` timed iterations after `warmup`, with our malloc settings (allocator_tunables()) in
// its GLIBC_TUNABLES. Error with the script's output when it fails.
DiffusersTimes time_diffusers(const std::string& timer_script, const SpeedRow& row, int threads, int iters, int warmup);

}  // namespace rewardgen
