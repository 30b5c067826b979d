#pragma once
// The compute device named on the command line or in a config.
#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <string>

namespace rewardgen {

// "cpu", "cuda" or "cuda:N"; Error naming the value when it does not parse or when this LibTorch
// build has no CUDA.
c10::Device parse_device(const std::string& name);

// N(0, I) drawn by `generator` (a CPU generator: the one randomness a run has) in `options`' dtype,
// then moved to `options`' device, so that a seed gives the same numbers on every device.
at::Tensor randn_from(at::Generator& generator, at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace rewardgen
