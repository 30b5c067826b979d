#pragma once
// Training-step speed of a UNet (or of one SD-sized down block) as FLOP/s and as a fraction of the
// measured GEMM peak (MFU). FLOPs are counted from the layers' shapes during a forward pass
// (models/flops.h); a training step (forward + backward) counts 3× the forward FLOPs.
#include <string>
#include <vector>

#include "eval/op_profile.h"
#include "models/precision.h"

#include "models/unet_2d_condition.h"

namespace rewardgen {

struct UnetBenchOptions {
  int64_t batch = 2, latent_size = 32, text_tokens = 77;
  int repeats = 3;              // timed repetitions after one warm-up, each timed alone
  bool first_down_block_only = false;  // time down_blocks.0 alone (input [B, C0, size, size])
  bool forward_only = false;           // skip the training step (SD-sized models at 64×64 need ~20 GB for it)
  Precision precision = Precision::fp32;  // bf16: forward with bf16 weights, training step under autocast
  bool profile = false;                // afterwards, one more forward (and training step) under an OpProfile
  c10::Device device = at::kCPU;       // on CUDA each timed pass ends by waiting for the device
  int64_t lora_rank = 0;               // > 0: the training step trains LoRA adapters (α = rank) on a frozen base
};

struct UnetBenchResult {
  double forward_gflop = 0, forward_s = 0, train_step_s = 0;  // means over the repetitions
  // The fastest repetition: on a shared or virtual machine the noise only ever adds time, so the
  // best of several passes is the steadier figure for a ratio between two programs.
  double forward_best_s = 0, train_step_best_s = 0;
  double forward_gflops_per_s() const { return forward_gflop / forward_s; }
  double train_gflops_per_s() const { return 3 * forward_gflop / train_step_s; }
  int64_t parameters = 0, lora_parameters = 0;  // lora_parameters: the trained adapters' (lora_rank > 0)
  // With options.profile: per-operator self times of one forward and of one training step
  // (forward + backward), measured after the timed repetitions so that profiling costs them nothing.
  std::vector<OpTime> forward_ops, forward_categories, train_ops, train_categories;
  double profiled_forward_s = 0, profiled_train_step_s = 0;  // wall-clock of the profiled passes
};

UnetBenchResult bench_unet(const UNet2DConditionConfig& config, const UnetBenchOptions& options);

}  // namespace rewardgen
