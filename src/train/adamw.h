#pragma once
// Adam (arXiv 1412.6980) and AdamW (decoupled weight decay, arXiv 1711.05101) over named
// parameters, with state kept as named tensors so that checkpoints store it by parameter name and
// a run resumes bit-exactly. Same arithmetic as torch.optim.Adam / AdamW (tested against them).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace rewardgen {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = true;  // true: AdamW; false: Adam with L2 added to the gradient
};

class AdamW {
 public:
  AdamW(NamedTensors parameters, AdamWOptions options);

  void zero_grad();  // sets gradients to None, as torch's set_to_none=True
  void step();       // parameters without a gradient are skipped, their state untouched
  void set_lr(double lr) { options_.lr = lr; }
  const AdamWOptions& options() const { return options_; }
  const NamedTensors& parameters() const { return parameters_; }

  // State as "<prefix><param name>.exp_avg", ".exp_avg_sq", ".step" (I64 scalar).
  void save_state(TensorMap& out, const std::string& prefix) const;
  // Restores what save_state wrote; throws Error naming any missing or mis-shaped tensor.
  void load_state(const TensorMap& in, const std::string& prefix);

 private:
  struct State {
    at::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  NamedTensors parameters_;
  std::vector<State> state_;
  AdamWOptions options_;
};

// Scales gradients so that their global L2 norm is at most max_norm (max_norm <= 0: no clipping).
// Returns the norm before clipping: +inf or NaN when a gradient is not finite (caller decides).
double clip_grad_norm(const NamedTensors& parameters, double max_norm);

}  // namespace rewardgen
