#pragma once
// Gradient checkpointing ("activation recomputation", Chen et al., arXiv 1604.06174): run a
// function without keeping its intermediate activations, and run it again during the backward pass
// to get them. Backprop through K UNet calls then holds K inputs instead of K graphs. LibTorch has
// no built-in for this (torch.utils.checkpoint is Python), so it is an autograd Function here.
#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace rewardgen {

using TensorFunction = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

// fn(inputs), with a graph that holds only `inputs`. In backward, fn is re-run with gradients on,
// and the output's gradient is propagated into the inputs that require it and into every tensor fn
// reads that requires it (parameters, LoRA adapters): their .grad accumulates as without
// recomputation. fn must be deterministic (no dropout: its second run must give the same values).
// When gradients are off, or nothing fn sees requires them, this is just fn(inputs).
at::Tensor recompute_in_backward(const TensorFunction& fn, const std::vector<at::Tensor>& inputs);

}  // namespace rewardgen
