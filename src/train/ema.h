#pragma once
// Exponential moving average of a model's parameters, kept in a second module of the same
// architecture (which is what evaluation and export then use). Buffers are copied as they are.
#include <torch/nn/module.h>

#include <cstdint>

namespace rewardgen {

// ema ← d·ema + (1 − d)·model with d = min(decay, (1 + step) / (10 + step)): the usual warm-up,
// so that early averages are not dominated by the random initialisation.
void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay, int64_t step);
// ema ← model exactly (start of training).
void ema_copy(torch::nn::Module& ema, const torch::nn::Module& model);

}  // namespace rewardgen
