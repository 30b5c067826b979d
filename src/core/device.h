#pragma once
// The compute device named on the command line or in a config.
#include <c10/core/Device.h>

#include <string>

namespace rewardgen {

// "cpu", "cuda" or "cuda:N"; Error naming the value when it does not parse or when this LibTorch
// build has no CUDA.
c10::Device parse_device(const std::string& name);

}  // namespace rewardgen
