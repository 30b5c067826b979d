#include "core/device.h"

#include <ATen/Context.h>

#include "core/error.h"

namespace rewardgen {

c10::Device parse_device(const std::string& name) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw Error(str("unknown device '", name, "' (use cpu, cuda or cuda:N)"));
  }
  if (device.is_cuda() && !at::hasCUDA())
    throw Error(str("device '", name, "' asked for, but this LibTorch build has no CUDA (or no GPU is visible)"));
  if (!device.is_cpu() && !device.is_cuda()) throw Error(str("unsupported device '", name, "' (use cpu or cuda)"));
  return device;
}

at::Tensor randn_from(at::Generator& generator, at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::randn(sizes, generator, options.device(generator.device())).to(options.device());
}

}  // namespace rewardgen
